// shared/core/log.ts: what a client puts in a log line comes out on one line, escaped, and cut.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safe } from '../shared/core/log.ts';

test('control characters, a backslash and direction overrides are escaped; other text is kept', () => {
  assert.equal(safe('a\nb\r\x00\x1b[31m\x7f\x9b'), 'a\\x0ab\\x0d\\x00\\x1b[31m\\x7f\\x9b');
  assert.equal(safe('C:\\x0a is not a newline'), 'C:\\\\x0a is not a newline');
  assert.equal(safe('\u202eexe.txt \u2066x\u2069 \u2028'), '\\u{202e}exe.txt \\u{2066}x\\u{2069} \\u{2028}');
  assert.equal(safe('héllo, 世界 🐢'), 'héllo, 世界 🐢');
});

test('each character that is escaped is escaped alone, in a message that has nothing else to escape', () => {
  const escaped: [string, string][] = [['\x00', '\\x00'], ['\x1f', '\\x1f'], ['\x7f', '\\x7f'], ['\x80', '\\x80'],
    ['\x9f', '\\x9f'], ['\\', '\\\\'], ...['2028', '2029', '200e', '200f', '202a', '202e', '2066', '2069', '061c']
      .map((hex): [string, string] => [String.fromCodePoint(parseInt(hex, 16)), `\\u{${hex.replace(/^0/, '')}}`])];
  for (const [char, shown] of escaped) assert.equal(safe(`user ${char} name`), `user ${shown} name`);
  for (const kept of [' ', '~', '\xa0', '\u2027', '\u202f', '\u2065', '\u206a']) assert.equal(safe(`a${kept}b`), `a${kept}b`);
});

test('a message is cut at 300 characters (not in the middle of one), saying how many more there were', () => {
  assert.equal(safe('🐢'.repeat(301)), `${'🐢'.repeat(300)}... (1 more character)`);
  assert.equal(safe('x'.repeat(300)), 'x'.repeat(300));
});
