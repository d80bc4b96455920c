// `npm test` after the type check: runs the test files with node:test, each file in a process of its own, a few
// files side by side, through test/reporter.ts (spec output, then the slowest tests and one closing line).
//   tsx test/run.ts [FILE...]            every test/*.test.ts when no file is named
//   TEST_CONCURRENCY=N                   how many files run side by side (default 2)
// Exits 1 when a test failed, or when no test ran.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from 'node:test';
import { fileURLToPath } from 'node:url';
import reporter from './reporter.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const named = process.argv.slice(2);
const files = named.length ? named.map((file) => resolve(file))
  : readdirSync(here).filter((name) => name.endsWith('.test.ts')).sort().map((name) => join(here, name));
const concurrency = Number(process.env.TEST_CONCURRENCY || 2);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`error: TEST_CONCURRENCY must be a whole number of files, 1 or more, not ${JSON.stringify(process.env.TEST_CONCURRENCY)}`);
  process.exit(2);
}

let ran = 0;
const tests = run({ files, concurrency });
tests.on('test:pass', () => ran++);
tests.on('test:fail', () => {
  ran++;
  process.exitCode = 1;
});
const output = tests.compose(reporter);
output.pipe(process.stdout);
// Read by a command that stops early (`| head`): the tests go on, and their outcome is still the exit status.
process.stdout.on('error', () => output.unpipe(process.stdout));
output.on('end', () => {
  if (ran === 0) {
    console.error('error: no test ran');
    process.exitCode = 1;
  }
});
