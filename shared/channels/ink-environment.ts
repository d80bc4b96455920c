// Ink and chalk read the server's own environment as they load: whether it runs in CI (then Ink draws nothing
// until the end) and whether its stdout is a colour terminal (a server's never is: then no colour at all). Neither
// says anything of the clients, whose terminals are what Ink draws on. Imported before Ink, this module takes
// those readings away; each session then decides from its own client (its TERM) what to draw.
//
// It also sets up the process for many React apps at once, each with a listener on the process. React runs its
// production build unless NODE_ENV says otherwise (the development build checks more, and keeps more of each
// render). And V8's heap grows to one and a half times what was live at its last full collection before the next
// one, not four times: Ink makes objects for every key it reads and every screen it draws, and a paste of a megabyte
// of escape sequences into each of 30 sessions took the step from about 150 MiB to 400 (npm run bench -- --attacks),
// nearly all of it garbage waiting for a collection; at twice, 100 sessions of 400x200 redrawn as fast as the step
// lets them still reached 300 to 330. Collections then come more often, for a few per cent more CPU.
import process, { env } from 'node:process';
import v8 from 'node:v8';
import { limits } from '../core/options.ts';

env.NODE_ENV ??= 'production';
// Each session's app holds a `beforeExit` listener on the process until it is unmounted (Ink's waitUntilExit()):
// one a session, so as many as the sessions that may be open, not Node's 10, past which it warns of a leak.
process.setMaxListeners(Math.max(process.getMaxListeners(), limits.maxConnections * limits.maxSessions));
try {
  v8.setFlagsFromString('--heap-growing-percent=50');
} catch {
  // Not V8 (Bun): its own collector.
}

delete env.CI;
delete env.CONTINUOUS_INTEGRATION;
env.FORCE_COLOR = '1'; // the 16 colours every colour terminal has; a session whose TERM has none is drawn without
