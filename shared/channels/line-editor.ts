// A one-line editor for a terminal (step 13): what the user is typing, edited as they type, and drawn again after
// other output has written over it; and other people's lines laid out for this user's terminal.
import { StringDecoder } from 'node:string_decoder';

const ESC = '\x1b';
/** The most parameter characters an escape sequence may have (the arrows have none); past it, it is dropped. */
const SEQUENCE_MAX = 32;
/** What each row of a line after its first begins with: no line's first row does (they begin with a name or `*`). */
export const CONTINUED = '  ';

/** What a key did: nothing to tell, a finished line, or the user leaving (Ctrl-C, or Ctrl-D on an empty line). */
export type Keyed = { line: string } | { leave: true } | undefined;

/** Where the editor is in an escape sequence: none, after ESC, after ESC [ (CSI), or after ESC O (SS3). */
type Escape = 'none' | 'esc' | 'csi' | 'ss3';

export class LineEditor {
  private text: string[] = [];
  private cursor = 0;
  private escape: Escape = 'none';
  private sequenceLength = 0;
  private lastChar = '';
  private readonly decoder = new StringDecoder('utf8');
  private readonly prompt: string;
  private readonly room: () => number;

  /** `prompt` is drawn before the text; `room()` says how many characters the text may have (the width left). */
  constructor(prompt: string, room: () => number) {
    this.prompt = prompt;
    this.room = room;
  }

  /**
   * Takes what the terminal sent: printable characters are inserted at the cursor, Backspace deletes before it,
   * Ctrl-U clears the line, the left and right arrows move, Enter finishes the line. A character past `room()` is
   * dropped, and the terminal's bell rung (BEL). Every other control character and escape sequence is ignored. Returns what the keys did, and what to write back to the terminal.
   * Each character is looked at once, and nothing is kept of a sequence but where it is: a read of any length, cut
   * anywhere, costs time in proportion to its length and no memory beyond the line.
   */
  feed(data: Buffer): { results: Keyed[]; echo: string } {
    const results: Keyed[] = [];
    let full = false; // a character did not fit: the terminal beeps, once
    // Characters, not UTF-16 units; a character split between two reads waits in the decoder for its end.
    for (const char of this.decoder.write(data)) {
      const previous = this.lastChar;
      this.lastChar = char;
      if (this.escape !== 'none' && this.inSequence(char)) continue;
      if (char === ESC) {
        [this.escape, this.sequenceLength] = ['esc', 0];
      } else if (char === '\r' || char === '\n') {
        if (char === '\n' && previous === '\r') continue;
        results.push({ line: this.text.join('') });
        [this.text, this.cursor] = [[], 0];
      } else if (char === '\x03' || (char === '\x04' && this.text.length === 0)) {
        results.push({ leave: true });
        break;
      } else if (char === '\x7f' || char === '\b') {
        if (this.cursor > 0) this.text.splice(--this.cursor, 1);
      } else if (char === '\x15') {
        [this.text, this.cursor] = [[], 0];
      } else if (char >= ' ' && !/[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]/u.test(char)) {
        if (this.text.length < this.room()) this.text.splice(this.cursor++, 0, char);
        else full = true;
      }
    }
    return { results, echo: `${this.draw()}${full ? '\x07' : ''}` };
  }

  /**
   * One character of an escape sequence (ESC [ parameters, then a final letter; or ESC O and a letter). Returns
   * whether it was part of the sequence; one that is not ends the sequence and is read as itself.
   */
  private inSequence(char: string): boolean {
    const state = this.escape;
    this.escape = 'none';
    if (state === 'esc' && (char === '[' || char === 'O')) {
      this.escape = char === '[' ? 'csi' : 'ss3';
      return true;
    }
    if (state === 'csi' && /[0-9;]/.test(char)) {
      // Kept going only so long: a sequence that never ends is dropped, and what follows is typed.
      if (++this.sequenceLength <= SEQUENCE_MAX) this.escape = 'csi';
      return true;
    }
    if ((state === 'csi' || state === 'ss3') && /[A-Za-z~]/.test(char)) {
      if (char === 'D') this.cursor = Math.max(0, this.cursor - 1);
      if (char === 'C') this.cursor = Math.min(this.text.length, this.cursor + 1);
      return true;
    }
    return false;
  }

  /** The prompt and the text, over whatever the cursor's row held, with the cursor where the user left it. */
  draw(): string {
    const back = this.text.length - this.cursor;
    return `\r${ESC}[K${this.prompt}${this.text.join('')}${back > 0 ? `${ESC}[${back}D` : ''}`;
  }

  /**
   * `lines` written above the line being typed, which is drawn again below them, each laid out for a terminal
   * `cols` wide (0: unknown, taken as 80). The server cuts each line into rows itself, and begins every row after a
   * line's first with CONTINUED: a line padded to wrap on a narrower terminal than its writer's cannot make a row
   * of its own that looks like someone else's line, or like a notice of the room's.
   */
  above(lines: string[], cols: number): string {
    const rows = lines.flatMap((line) => wrap(line, cols > 0 ? cols : 80));
    return `\r${ESC}[K${rows.map((row) => `${row}\r\n`).join('')}${this.draw()}`;
  }
}

/**
 * `line` cut into rows of at most `width` columns, every row after the first begun with CONTINUED. A character
 * other than printable ASCII is counted as two columns (East Asian characters and most emoji take two), so that
 * the rows are never wider than the terminal, which would wrap them again itself.
 */
function wrap(line: string, width: number): string[] {
  const rows: string[] = [];
  let row = '';
  let used = 0;
  for (const char of line) {
    const columns = char >= ' ' && char <= '~' ? 1 : 2;
    if (used + columns > width && used > (rows.length ? CONTINUED.length : 0)) {
      rows.push(row);
      [row, used] = [CONTINUED, CONTINUED.length];
    }
    row += char;
    used += columns;
  }
  rows.push(row);
  return rows;
}
