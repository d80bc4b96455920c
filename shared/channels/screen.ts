// Drawing a whole terminal screen with ANSI escape sequences, for step 10's full-screen app.

/** The largest screen drawn, whatever size the client claims (a pty request may say 4,294,967,295 columns). */
export const MAX_COLS = 1000;
export const MAX_ROWS = 1000;

/**
 * The bytes that draw a border around a `cols` x `rows` terminal with `lines` centred inside it. Each row is
 * placed with a cursor move (ESC [ row ; 1 H), so nothing depends on line endings or scrolling. A larger
 * terminal than MAX_COLS x MAX_ROWS gets a screen of that size, so one drawing stays under about a megabyte.
 */
export function drawScreen(claimedCols: number, claimedRows: number, lines: string[]): string {
  const cols = Math.min(claimedCols, MAX_COLS);
  const rows = Math.min(claimedRows, MAX_ROWS);
  const inner = Math.max(cols - 2, 0);
  const first = Math.floor((rows - lines.length) / 2);
  let out = '\x1b[2J';
  for (let row = 0; row < rows; row++) {
    let text: string;
    if (row === 0 || row === rows - 1) {
      text = `+${'-'.repeat(inner)}+`;
    } else {
      const line = lines[row - first] ?? '';
      const left = Math.max(Math.floor((inner - line.length) / 2), 0);
      text = `|${`${' '.repeat(left)}${line}`.padEnd(inner).slice(0, inner)}|`;
    }
    out += `\x1b[${row + 1};1H${text.slice(0, cols)}`;
  }
  return out;
}
