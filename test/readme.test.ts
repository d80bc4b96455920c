// The README quotes code and diffs; these tests keep every quote the same as the step files it comes from.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { diffSteps } from './diff-steps.ts';
import { root, runStep } from './helpers.ts';

const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** Each fenced block with the marker comment on the line before it (or '' when it has none). */
const blocks = [...readme.matchAll(/^(?:<!-- (.*?) -->\n)?```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
  marker: m[1] ?? '',
  language: m[2]!,
  body: m[3]!,
}));

describe('README', () => {
  test('every code or diff block says where it comes from', () => {
    const unmarked = blocks.filter((b) => ['ts', 'diff'].includes(b.language) && b.marker === '');
    assert.deepEqual(unmarked.map((b) => b.body.split('\n')[0]), []);
    assert.ok(blocks.some((b) => b.marker.startsWith('quote: ')), 'at least one quote');
    assert.ok(blocks.some((b) => b.marker.startsWith('diff: ')), 'at least one diff');
  });

  for (const { marker, body } of blocks.filter((b) => b.marker.startsWith('quote: '))) {
    const file = marker.slice('quote: '.length);
    test(`the code quoted from ${file} is in it, word for word`, () => {
      assert.ok(readFileSync(join(root, file), 'utf8').includes(body), `${file} does not contain:\n${body}`);
    });
  }

  for (const { marker, body } of blocks.filter((b) => b.marker.startsWith('diff: '))) {
    const [from, to] = marker.slice('diff: '.length).split(' ');
    test(`the diff from step ${from} to step ${to} is what \`npm run diff -- ${from} ${to}\` prints`, () => {
      assert.equal(body, diffSteps(from!, to!));
    });
  }

  test('the options table names every option and variable that --help lists', async () => {
    const help = (await runStep('01-no-login.ts', ['--help'])).stdout;
    const names = new Set(help.match(/--[a-z]+|\$[A-Z_]+|^ {2}[A-Z_]+(?= )/gm)!.map((n) => n.replace(/^[\s$]+/, '')));
    assert.ok(names.size >= 6, [...names].join(' '));
    for (const name of names) assert.ok(readme.includes(`| \`${name}`), `the options table lacks ${name}`);
  });
});
