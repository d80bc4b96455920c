// A one-line editor for a terminal (step 13): what the user is typing, edited as they type, and drawn again after
// other output has written over it.
import { StringDecoder } from 'node:string_decoder';

const ESC = '\x1b';

/** What a key did: nothing to tell, a finished line, or the user leaving (Ctrl-C, or Ctrl-D on an empty line). */
export type Keyed = { line: string } | { leave: true } | undefined;

export class LineEditor {
  private text: string[] = [];
  private cursor = 0;
  private pending = '';
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
   * Ctrl-U clears the line, the left and right arrows move, Enter finishes the line. Every other control character
   * and escape sequence is ignored. Returns what the keys did, and what to write back to the terminal.
   */
  feed(data: Buffer): { results: Keyed[]; echo: string } {
    const results: Keyed[] = [];
    // Characters, not UTF-16 units; a character split between two reads waits in the decoder for its end.
    const input = [...this.pending + this.decoder.write(data)];
    this.pending = '';
    for (let i = 0; i < input.length; i++) {
      const char = input[i]!;
      if (char === ESC) {
        // An escape sequence: ESC [ then parameters, then a final letter. One cut short waits for the rest.
        const sequence = /^\x1b(\[[0-9;]*[A-Za-z~]?|O[A-Za-z]?)?/.exec(input.slice(i).join(''))![0];
        if (i + sequence.length === input.length && !/[A-Za-z~]$/.test(sequence)) {
          this.pending = sequence;
          break;
        }
        if (sequence.endsWith('D')) this.cursor = Math.max(0, this.cursor - 1);
        if (sequence.endsWith('C')) this.cursor = Math.min(this.text.length, this.cursor + 1);
        i += sequence.length - 1;
      } else if (char === '\r' || char === '\n') {
        if (char === '\n' && input[i - 1] === '\r') continue;
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
      }
    }
    return { results, echo: this.draw() };
  }

  /** The prompt and the text, over whatever the cursor's row held, with the cursor where the user left it. */
  draw(): string {
    const back = this.text.length - this.cursor;
    return `\r${ESC}[K${this.prompt}${this.text.join('')}${back > 0 ? `${ESC}[${back}D` : ''}`;
  }

  /** `lines` written above the line being typed, which is drawn again below them. */
  above(lines: string[]): string {
    return `\r${ESC}[K${lines.map((line) => `${line}\r\n`).join('')}${this.draw()}`;
  }
}
