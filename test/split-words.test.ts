// splitWords() splits as a POSIX shell splits simple words; the expected words are what `sh` gives.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { splitWords } from '../shared/channels/split-words.ts';

const lines = [
  'echo hello world',
  `echo 'a  b' "c\\"d" e\\ f`,
  `  spaced\tout  `,
  `echo "it's" 'say "hi"' \\'`,
  `echo "a\\b" "\\$x" 'a\\b'`,
  `echo ''  "" x""y`,
  `exit 3`,
];

test('splitWords gives the words sh gives', () => {
  for (const line of lines) {
    // Ask the real shell: print each word it sees on a line of its own, NUL-separated.
    const sh = spawnSync('sh', ['-c', `set -- ${line}; printf '%s\\0' "$@"`], { encoding: 'utf8' });
    const expected = sh.stdout === '' ? [] : sh.stdout.slice(0, -1).split('\0');
    assert.deepEqual(splitWords(line), expected, line);
  }
});

test('an unterminated quote is an error, not a guess', () => {
  assert.deepEqual(splitWords(`echo 'oops`), { error: 'unterminated quoted string' });
  assert.deepEqual(splitWords(`echo "oops`), { error: 'unterminated quoted string' });
});
