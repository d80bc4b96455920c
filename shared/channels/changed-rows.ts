// Ink's full-screen frames (step 18), sent as the rows that changed. Ink draws an app as tall as its terminal whole
// at every render: the screen erased, then every row, some 86 kB at 400x200 for a key press that changes two rows.
// The client's terminal shows the same either way; what is sent, encrypted and held meanwhile is not.

/** What Ink writes first in a full-screen frame: erase the screen and the scrollback, then go to the top left. */
const CLEAR = '\x1b[2J\x1b[3J\x1b[H';
/** Writes that change nothing on the screen: hide or show the cursor, begin or end a synchronized update. */
const NOTHING_DRAWN = /^(\x1b\[\?(25|2026)[hl])+$/;

/**
 * Returns a converter of what Ink writes into what is sent. A frame goes as the rows that differ from the last frame
 * sent, each placed with a cursor move and erased before it is written. A frame like the last one in every row goes
 * whole: Ink draws one only when asked to (the terminal was resized, and may have lost what it showed). Anything else
 * goes as it came, its LF made CR LF, and the next frame goes whole.
 */
export function changedRows(): (written: string) => string {
  let shown: string[] = [];
  return (written) => {
    if (NOTHING_DRAWN.test(written)) return written;
    const frame = written.startsWith(CLEAR) ? written.slice(CLEAR.length).split('\n') : [];
    const before = shown;
    shown = frame;
    const changed = frame.length === before.length ? frame.flatMap((row, i) => (row === before[i] ? [] : [i])) : [];
    if (!changed.length) return written.replaceAll('\n', '\r\n');
    return changed.map((i) => `\x1b[${i + 1}H\x1b[2K${frame[i]}`).join('');
  };
}
