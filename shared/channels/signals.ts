// Signals by the names SSH gives them (`INT`, `TERM`: RFC 4254 section 6.10), for step 14's programs.
import { constants } from 'node:os';

/** A signal's name (`TERM`) from its number (15), as SSH names signals. */
export const signalName = (number: number) =>
  Object.entries(constants.signals).find(([, value]) => value === number)?.[0].replace(/^SIG/, '') ?? 'KILL';
/** Sends a signal named by the client (`INT`), if there is such a signal and the program is still there. */
export function deliver(send: (signal: NodeJS.Signals) => void, name: string): void {
  if (!Object.hasOwn(constants.signals, `SIG${name}`)) return;
  try {
    send(`SIG${name}` as NodeJS.Signals);
  } catch {
    // It has ended already.
  }
}
