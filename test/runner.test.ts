// npm test's runner (test/run.ts, test/reporter.ts): the closing lines, the exit status, and the check that fails a
// file leaving a process behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { guarded, root, temporaryDir } from './helpers.ts';

const dir = temporaryDir();
const helpers = pathToFileURL(join(root, 'test', 'helpers.ts')).href;

/** Runs `tsx test/run.ts FILES` with TEST_RESULTS; resolves with what it printed, its status and its results. */
function runTests(files: string[]) {
  const results = join(dir, `results-${files.length}-${Date.now()}.jsonl`);
  // Run as npm test runs it, not as a file of this run (which NODE_TEST_CONTEXT would make it).
  const env: NodeJS.ProcessEnv = { ...process.env, TEST_RESULTS: results };
  delete env.NODE_TEST_CONTEXT;
  const child = guarded(spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'test', 'run.ts'), ...files], {
    cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  return new Promise<{ output: string; status: number | null; results: { name: string; ok: boolean }[] }>((resolve) =>
    child.once('close', (status) => resolve({
      output, status,
      results: readFileSync(results, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line)),
    })));
}

describe('npm test\'s runner', { timeout: 120_000 }, () => {
  test('a passing and a failing test: both counted, the slowest listed, the closing line last, status 1', async () => {
    const file = join(dir, 'mixed.test.ts');
    writeFileSync(file, [
      `import { describe, test } from 'node:test';`,
      `import '${helpers}';`,
      `describe('outer', () => {`,
      `  test('passes', () => {});`,
      `  test('fails', () => { throw new Error('on purpose'); });`,
      `});`,
      '',
    ].join('\n'));
    const { output, status, results } = await runTests([file]);
    assert.equal(status, 1);
    assert.match(output, /\nthe 2 slowest tests:\n.* › outer › (passes|fails)\n.* › outer › (passes|fails)\n\ntests: 1 passed, 1 failed\n$/);
    assert.deepEqual(results.map(({ name, ok }) => [name, ok]), [['outer › passes', true], ['outer › fails', false]]);
  });

  test('a file that leaves a process running fails, naming it, and the process is ended', async () => {
    const file = join(dir, 'leftover.test.ts');
    const pidFile = join(dir, 'leftover.pid');
    writeFileSync(file, [
      `import { spawn } from 'node:child_process';`,
      `import { writeFileSync } from 'node:fs';`,
      `import { test } from 'node:test';`,
      `import '${helpers}';`,
      `test('starts a sleep and leaves it', () => {`,
      `  writeFileSync(${JSON.stringify(pidFile)}, String(spawn('sleep', ['300'], { stdio: 'ignore' }).pid));`,
      `});`,
      '',
    ].join('\n'));
    const { output, status } = await runTests([file]);
    assert.equal(status, 1);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.match(output, new RegExp(`this file left running: ${pid} sleep`));
    assert.match(output, /\ntests: 1 passed, 1 failed\n$/);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the sleep was ended');
  });
});
