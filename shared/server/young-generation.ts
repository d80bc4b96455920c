// How much memory V8 keeps for new objects: a server with many idle connections should not pay for its logins.
import v8 from 'node:v8';

/**
 * Keeps V8's young generation (where every object starts) at the size it has when the step starts listening. By
 * default it grows while many objects survive a collection, as they do while clients log in: up to 16 MiB a half
 * on Node 20 and 64 MiB on Node 24, and it keeps that size once grown, so a busy minute of logins is paid for in
 * memory for as long as the process runs (about half of the 51 KiB that each of 1000 idle connections to step 09
 * cost on Node 20: test/bench/README.md). Objects that outlive a small young generation move to the old one sooner;
 * `npm run bench` shows no more CPU per session for it. `--max-semi-space-size` would do this from the command
 * line, but a step is run as `npx tsx FILE`: here, a growth factor of 1 set once running (on the command line it
 * has no effect: tried). Runtimes that are not V8 (Bun) have no such setting, and keep their own ways.
 */
export function keepYoungGenerationSmall(): void {
  try {
    v8.setFlagsFromString('--semi-space-growth-factor=1');
  } catch {
    // Not V8.
  }
}
