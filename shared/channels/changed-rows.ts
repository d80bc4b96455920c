// Ink's full-screen frames (step 18), sent as the rows that changed. Ink draws an app as tall as its terminal whole
// at every render: the screen erased, then every row, some 86 kB at 400x200 for a key press that changes two rows.
// The client's terminal shows the same either way; what is sent, encrypted and held meanwhile is not.

/** What Ink writes first in a full-screen frame: erase the screen and the scrollback, then go to the top left. */
const CLEAR = '\x1b[2J\x1b[3J\x1b[H';
/**
 * A row every terminal draws as Ink counts it: printable ASCII, the box-drawing characters of Ink's borders, and
 * colours. Others (a Hangul jamo, a flag's half) some terminals draw wider than Ink counts them, spilling into the
 * next row, which Ink then does not know to draw again: a frame that changes such a row goes whole.
 */
const NARROW = /^(?:[\x20-\x7e\u2500-\u257f]|\x1b\[[\d;]*m)*$/;
/** Writes that change nothing on the screen: hide or show the cursor, begin or end a synchronized update. */
const NOTHING_DRAWN = /^(\x1b\[\?(25|2026)[hl])+$/;

/**
 * Returns a converter of what Ink writes into what is sent. A frame goes as the rows that differ from the last frame
 * sent, each placed with a cursor move and erased before it is written. A frame like the last one in every row goes
 * whole: Ink draws one after a resize, when the terminal may have lost what it showed. So does a frame that changes
 * a row that is not NARROW. Anything else goes as it came, its LF made CR LF, and the next frame goes whole.
 */
export function changedRows(): (written: string) => string {
  let shown: string[] = [];
  return (written) => {
    if (NOTHING_DRAWN.test(written)) return written;
    const frame = written.startsWith(CLEAR) ? written.slice(CLEAR.length).split('\n') : [];
    const before = shown;
    shown = frame;
    const changed = frame.length === before.length ? frame.flatMap((row, i) => (row === before[i] ? [] : [i])) : [];
    const narrow = changed.every((i) => NARROW.test(frame[i]!) && NARROW.test(before[i]!));
    if (!changed.length || !narrow) return written.replaceAll('\n', '\r\n');
    return changed.map((i) => `\x1b[${i + 1}H\x1b[2K${frame[i]}`).join('');
  };
}
