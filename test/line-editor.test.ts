// shared/line-editor.ts on its own: the keys a terminal sends, however they are cut into reads.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LineEditor } from '../shared/line-editor.ts';

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
    assert.deepEqual(type(editor, 'abcdefgh\r').done, [{ line: 'abcde' }]);
    assert.deepEqual(type(editor, 'x\x04').done, []);
    assert.deepEqual(type(editor, '\x15\x04').done, [{ leave: true }]);
    assert.deepEqual(type(editor, 'typing\x03').done, [{ leave: true }]);
  });

  test('the drawing puts the cursor back where the user left it; above() writes lines over the row first', () => {
    const editor = new LineEditor('> ', () => 100);
    assert.equal(type(editor, 'abc', '\x1b[D\x1b[D').echo, '\r\x1b[K> abc\x1b[2D');
    assert.equal(editor.above(['bob: hi']), '\r\x1b[Kbob: hi\r\n\r\x1b[K> abc\x1b[2D');
  });
});
