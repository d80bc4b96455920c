// shared/channels/line-editor.ts on its own: the keys a terminal sends, however they are cut into reads.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LineEditor } from '../shared/channels/line-editor.ts';

// A full garbage collection on demand, to see what is kept rather than what is not yet collected.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Feeds each piece in turn (as separate reads) and returns the lines finished and the last drawing. */
function type(editor: LineEditor, ...pieces: (string | Buffer)[]) {
  const done = [];
  let echo = '';
  for (const piece of pieces) {
    const fed = editor.feed(Buffer.isBuffer(piece) ? piece : Buffer.from(piece));
    done.push(...fed.results);
    echo = fed.echo;
  }
  return { done, echo };
}

describe('the line editor', () => {
  test('Enter finishes the line; Backspace, Ctrl-U and the arrows edit it', () => {
    const editor = new LineEditor('> ', () => 100);
    assert.deepEqual(type(editor, 'helo', '\x1b[D', 'l', '\x1b[C', '!!', '\x7f', '\r').done, [{ line: 'hello!' }]);
    assert.deepEqual(type(editor, 'gone', '\x15', 'kept\r').done, [{ line: 'kept' }]);
    assert.deepEqual(type(editor, 'a\r\nb\r').done, [{ line: 'a' }, { line: 'b' }]);
  });

  test('an escape sequence or a character cut between two reads waits for its end', () => {
    const editor = new LineEditor('> ', () => 100);
    const e = Buffer.from('é');
    assert.deepEqual(type(editor, 'ab', '\x1b', '[', 'D', e.subarray(0, 1), e.subarray(1), '\r').done, [{ line: 'aéb' }]);
  });

  test('control characters, other escape sequences and direction overrides never enter the line', () => {
    const editor = new LineEditor('> ', () => 100);
    assert.deepEqual(type(editor, 'a\x1b[2J\x1b]0;t\x07b\u202ec\x9bd\x00e\r').done, [{ line: 'a]0;tbcde' }]);
  });

  test('the line holds at most what room() allows; Ctrl-C, and Ctrl-D on an empty line, leave', () => {
    const editor = new LineEditor('> ', () => 5);
    // A character that does not fit rings the bell, once a read; one that fits does not.
    assert.equal(type(editor, 'abcd').echo, '\r\x1b[K> abcd');
    assert.equal(type(editor, 'efgh').echo, '\r\x1b[K> abcde\x07');
    assert.deepEqual(type(editor, '\r').done, [{ line: 'abcde' }]);
    assert.deepEqual(type(editor, 'x\x04').done, []);
    assert.deepEqual(type(editor, '\x15\x04').done, [{ leave: true }]);
    assert.deepEqual(type(editor, 'typing\x03').done, [{ leave: true }]);
  });

  test('the drawing puts the cursor back where the user left it; above() writes lines over the row first', () => {
    const editor = new LineEditor('> ', () => 100);
    assert.equal(type(editor, 'abc', '\x1b[D\x1b[D').echo, '\r\x1b[K> abc\x1b[2D');
    assert.equal(editor.above(['bob: hi'], 80), '\r\x1b[Kbob: hi\r\n\r\x1b[K> abc\x1b[2D');
  });

  test('a chunk of nothing but ESC bytes is looked at once: no copy of what follows each ESC', () => {
    // Before, each ESC re-joined the rest of the chunk: 32 KiB of them took seconds, some 64 times what 4 KiB took.
    // Counted, not timed (a timed test fails on a busy machine): the calls that copy strings, arrays or buffers
    // while the editor reads a chunk are as many for 32 KiB as for 4 KiB.
    const copiers: [object, string][] = [[String.prototype, 'slice'], [String.prototype, 'substring'],
      [String.prototype, 'concat'], [Array.prototype, 'join'], [Array.prototype, 'slice'], [Array.prototype, 'concat'],
      [Buffer, 'concat'], [Buffer.prototype, 'subarray'], [Buffer.prototype, 'slice'], [Buffer.prototype, 'toString']];
    const copies = (bytes: number) => {
      const editor = new LineEditor('> ', () => 100);
      const chunk = Buffer.alloc(bytes, 0x1b);
      let calls = 0;
      const originals = copiers.map(([owner, name]) => (owner as Record<string, unknown>)[name] as (...args: unknown[]) => unknown);
      copiers.forEach(([owner, name], i) => {
        (owner as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]) {
          calls += 1;
          return originals[i]!.apply(this, args);
        };
      });
      let fed: ReturnType<LineEditor['feed']>;
      try {
        fed = editor.feed(chunk);
      } finally {
        copiers.forEach(([owner, name], i) => ((owner as Record<string, unknown>)[name] = originals[i]));
      }
      assert.deepEqual(fed, { results: [], echo: '\r\x1b[K> ' });
      return calls;
    };
    const small = copies(4096);
    const large = copies(32 * 1024);
    assert.ok(large <= small, `${small} copying calls for 4 KiB, ${large} for 32 KiB`);
  });

  test('an escape sequence that never ends is dropped past its cap, and nothing of it is kept', () => {
    const editor = new LineEditor('> ', () => 100);
    const digits = Buffer.alloc(4 * 1024 * 1024, '1');
    const heldAfter = (feed: () => void) => {
      collectGarbage();
      const before = process.memoryUsage().heapUsed;
      feed();
      collectGarbage();
      return process.memoryUsage().heapUsed - before;
    };
    // Before, the whole sequence was kept, and joined again with every later read.
    const held = heldAfter(() => type(editor, '\x1b[', digits, digits));
    assert.ok(held < 1024 * 1024, `${(held / 1024).toFixed(0)} KiB held after 8 MiB of one sequence`);
    // Past the cap the sequence is dropped and the digits are typed (up to room()); the line still works.
    const { done } = type(editor, '\x15ok\r');
    assert.deepEqual(done, [{ line: 'ok' }]);
    // A sequence within the cap still moves the cursor, however it is cut.
    assert.deepEqual(type(editor, 'ac', '\x1b', '[1;', '5', 'D', 'b\r').done, [{ line: 'abc' }]);
  });

  test('other people\'s lines are cut into rows for this terminal, each row after the first marked', () => {
    const editor = new LineEditor('> ', () => 100);
    // Padded so that, on a 20-column terminal, "bob: I am bob" would start a row of its own.
    const spoof = `alice: hi${' '.repeat(11)}bob: I am bob`;
    const drawn = editor.above([spoof, '* carol joined'], 20);
    const rows = drawn.replace(/^\r\x1b\[K/, '').split('\r\n').slice(0, -1);
    assert.deepEqual(rows, ['alice: hi           ', '  bob: I am bob', '* carol joined']);
    for (const row of rows) assert.ok(row.length <= 20, row);
    // Characters other than ASCII count two columns: never wider than the terminal, whatever they are.
    const wide = editor.above([`bob: ${'語'.repeat(20)}`], 20).split('\r\n').slice(0, -1);
    assert.deepEqual(wide.map((row) => row.replace(/^\r\x1b\[K/, '')), [`bob: ${'語'.repeat(7)}`,
      `  ${'語'.repeat(9)}`, `  ${'語'.repeat(4)}`]);
    assert.equal(editor.above(['x'.repeat(100)], 0).split('\r\n').length, 3, 'an unknown width is taken as 80');
  });
});
