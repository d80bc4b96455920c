// Drawing a whole terminal screen with ANSI escape sequences, for step 10's full-screen app.

/**
 * The bytes that draw a border around a `cols` x `rows` terminal with `lines` centred inside it. Each row is
 * placed with a cursor move (ESC [ row ; 1 H), so nothing depends on line endings or scrolling.
 */
export function drawScreen(cols: number, rows: number, lines: string[]): string {
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
