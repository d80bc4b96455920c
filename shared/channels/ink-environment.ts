// Ink and chalk read the server's own environment as they load: whether it runs in CI (then Ink draws nothing
// until the end) and whether its stdout is a colour terminal (a server's never is: then no colour at all). Neither
// says anything of the clients, whose terminals are what Ink draws on. Imported before Ink, this module takes
// those readings away; each session then decides from its own client (its TERM) what to draw.
import { env } from 'node:process';

delete env.CI;
delete env.CONTINUOUS_INTEGRATION;
env.FORCE_COLOR = '1'; // the 16 colours every colour terminal has; a session whose TERM has none is drawn without
