// showBytes() renders bytes as Python's repr() renders a byte string; the expected texts are Python's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { showBytes } from '../shared/channels/show-bytes.ts';

test('showBytes matches repr() for keys, control bytes, quotes and non-ASCII bytes', () => {
  const cases: [Buffer, string][] = [
    [Buffer.from('a'), `'a'`],
    [Buffer.from('\r'), `'\\r'`],
    [Buffer.from('hello\n'), `'hello\\n'`],
    [Buffer.from('\t\x00\x03\x04\x1b[A\x7f'), `'\\t\\x00\\x03\\x04\\x1b[A\\x7f'`],
    [Buffer.from("it's"), `"it's"`],
    [Buffer.from(`'"`), `'\\'"'`],
    [Buffer.from('back\\slash'), `'back\\\\slash'`],
    [Buffer.from('é'), `'\\xc3\\xa9'`],
    [Buffer.alloc(0), `''`],
  ];
  for (const [data, expected] of cases) assert.equal(showBytes(data), expected, JSON.stringify(data.toString('latin1')));
});
