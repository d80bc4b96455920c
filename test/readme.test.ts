// The README and the lessons quote code and diffs; these tests keep every quote the same as the files it comes from.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { addedLines, baseOf, codeShare, diffSteps, pages, stepNumbers } from '../shared/tools/diff-steps.ts';
import { root, runStep } from './helpers.ts';

const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** Each fenced block of a page with the marker comment on the line before it (or '' when it has none). */
function blocksOf(page: string) {
  const text = readFileSync(join(root, page), 'utf8');
  return [...text.matchAll(/^(?:<!-- (.*?) -->\n)?```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    marker: m[1] ?? '',
    language: m[2]!,
    body: m[3]!,
  }));
}

describe('the README and the lessons', () => {
  test('there is a lesson beside each step, and the README links to each', () => {
    const steps = readdirSync(join(root, 'steps')).filter((file) => file.endsWith('.ts'));
    for (const step of steps) {
      const lesson = `steps/${step.replace(/\.ts$/, '.md')}`;
      assert.ok(pages().includes(lesson), `no ${lesson}`);
      assert.ok(readme.includes(`](${lesson})`), `the README does not link to ${lesson}`);
    }
  });

  const all = pages().flatMap((page) => blocksOf(page).map((block) => ({ page, ...block })));

  test('every code or diff block says where it comes from', () => {
    const unmarked = all.filter((b) => ['ts', 'diff'].includes(b.language) && b.marker === '');
    assert.deepEqual(unmarked.map((b) => `${b.page}: ${b.body.split('\n')[0]}`), []);
    assert.ok(all.some((b) => b.marker.startsWith('quote: ')), 'at least one quote');
    assert.ok(all.some((b) => b.marker.startsWith('adds: ')), 'at least one list of added lines');
  });

  for (const { page, marker, body } of all.filter((b) => b.marker.startsWith('quote: '))) {
    const file = marker.slice('quote: '.length);
    test(`${page}: the code quoted from ${file} is in it, word for word`, () => {
      assert.ok(readFileSync(join(root, file), 'utf8').includes(body), `${file} does not contain:\n${body}`);
    });
  }

  for (const { page, marker, body } of all.filter((b) => b.marker.startsWith('adds: '))) {
    const [from, to] = marker.slice('adds: '.length).split(' ');
    test(`${page}: the lines shown as what step ${to} adds are what it adds`, () => {
      assert.equal(body, `${addedLines(from!, to!)}\n`);
    });
  }

  for (const { page, marker, body } of all.filter((b) => b.marker.startsWith('diff: '))) {
    const [from, to] = marker.slice('diff: '.length).split(' ');
    test(`${page}: the diff from step ${from} to step ${to} is what \`npm run diff -- ${from} ${to}\` prints`, () => {
      assert.equal(body, diffSteps(from!, to!));
    });
  }

  test('what changes from a step to the next, or to the step it builds on, is at least 80% code, not comments', () => {
    const numbers = stepNumbers();
    assert.ok(numbers.length >= 11);
    const low = numbers.slice(1).flatMap((to) => {
      const { code, comments } = codeShare(baseOf(to), to);
      return code / (code + comments) < 0.8 ? [`${baseOf(to)} to ${to}: ${code} lines of code, ${comments} of comments`] : [];
    });
    assert.deepEqual(low, []);
  });

  test('from step 11 on, each step names the earlier step it builds on, and stays at 140 lines or fewer', () => {
    for (const number of stepNumbers().filter((n) => Number(n) >= 11)) {
      const file = readdirSync(join(root, 'steps')).find((f) => f.startsWith(`${number}-`) && f.endsWith('.ts'))!;
      const text = readFileSync(join(root, 'steps', file), 'utf8');
      assert.match(text.split('\n')[0]!, /^\/\/ Step \d\d, built on step \d\d: /, file);
      assert.ok(Number(baseOf(number)) < Number(number), `${file} builds on a later step`);
      assert.match(readme, new RegExp(`^ *${baseOf(number)} → ${number} `, 'm'), `the README's tree lacks ${baseOf(number)} → ${number}`);
      const row = readme.split('\n').find((line) => line.startsWith(`| [\`${file}\`]`)) ?? '';
      assert.match(row, new RegExp(`\\| ${baseOf(number)} \\| [^|]+ \\|$`), `the README's row for ${file}`);
      assert.ok(text.trimEnd().split('\n').length <= 140, `${file} has ${text.trimEnd().split('\n').length} lines`);
    }
    // Step 10 too, the longest of Part 1: what is not its lesson comes from shared/.
    assert.ok(readFileSync(join(root, 'steps', '10-window-change.ts'), 'utf8').trimEnd().split('\n').length <= 140);
  });

  test('the options table names every option and variable that --help lists', async () => {
    const help = (await runStep('01-no-login.ts', ['--help'])).stdout;
    const names = new Set(help.match(/--[a-z]+|\$[A-Z_]+|^ {2}[A-Z_]+(?= )/gm)!.map((n) => n.replace(/^[\s$]+/, '')));
    assert.ok(names.size >= 6, [...names].join(' '));
    const table = readFileSync(join(root, 'shared', 'README.md'), 'utf8');
    for (const name of names) assert.ok(table.includes(`| \`${name}`), `the options table (shared/README.md) lacks ${name}`);
    assert.deepEqual(help.split('\n').filter((line) => line.length > 100), [], '--help fits 100 columns');
  });

  test('npm run diff without a step number says so, and how to give one', () => {
    const result = spawnSync(process.execPath, [...process.execArgv, join(root, 'shared', 'tools', 'diff-steps.ts')], { encoding: 'utf8' });
    assert.equal(result.stderr, 'error: which step? usage: npm run diff -- 11 for what step 11 adds to the step it '
      + 'builds on, or npm run diff -- 2 3\n');
    assert.equal(result.status, 2);
  });
});
