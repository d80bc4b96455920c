// `npm run flakes -- [--runs N] [--busy N] [FILE...]`: hunts flaky tests. Runs the whole suite (or the files named)
// N times in a row (default 5) while N other processes (default 1) each keep one core busy, as on a shared CI
// machine, then prints for each test that ever failed how often it failed and why, and the slowest tests with the
// slowest time each took in any run. Each run's full output goes to a log file, named at the end.
//   npm run flakes                                    five runs of every test file, one core kept busy
//   npm run flakes -- --runs 10 test/shell.test.ts    ten runs of one file
//   npm run flakes -- --busy 0                        the same on an idle machine
// Exits 1 when any test failed in any run.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestResult } from './reporter.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const usage = 'usage: npm run flakes -- [--runs N] [--busy N] [FILE...]';

let runs = 5;
let busy = 1;
const files: string[] = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!;
  if (arg === '--runs' || arg === '--busy') {
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < (arg === '--runs' ? 1 : 0)) {
      console.error(`error: ${arg} takes a whole number${arg === '--runs' ? ', 1 or more' : ''}\n${usage}`);
      process.exit(2);
    }
    if (arg === '--runs') runs = value;
    else busy = value;
  } else if (arg === '--help' || arg === '-h') {
    console.log(usage);
    process.exit(0);
  } else if (arg.startsWith('-')) {
    console.error(`error: unknown option ${arg}\n${usage}`);
    process.exit(2);
  } else files.push(arg);
}

const dir = mkdtempSync(join(tmpdir(), 'conch-steps-flakes-'));
// The load: each of these spins on one core until this command ends.
const spinners = Array.from({ length: busy }, () =>
  spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
const stopSpinners = () => spinners.forEach((spinner) => spinner.kill('SIGKILL'));
process.on('exit', stopSpinners);
process.on('SIGINT', () => process.exit(130));

function minutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/** One run of `tsx test/run.ts FILES`, its output to `log`; resolves with its results and how long it took. */
function once(run: number): Promise<{ results: TestResult[]; ms: number; status: number | null }> {
  const resultsFile = join(dir, `run-${run}.jsonl`);
  const log = createWriteStream(join(dir, `run-${run}.log`));
  const started = Date.now();
  const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'test', 'run.ts'), ...files], {
    cwd: root, env: { ...process.env, TEST_RESULTS: resultsFile }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  return new Promise((resolve) => child.once('close', (status) => {
    let results: TestResult[] = [];
    try {
      results = readFileSync(resultsFile, 'utf8').trimEnd().split('\n').filter(Boolean).map((line) => JSON.parse(line));
    } catch {
      // no test reported anything: the run's status and log say why
    }
    resolve({ results, ms: Date.now() - started, status });
  }));
}

console.log(`flakes: ${runs} run(s) of ${files.length ? files.join(' ') : 'every test file'}, ${busy} core(s) kept busy; ` +
  `node ${process.version}; logs in ${dir}`);
const seen = new Map<string, { file: string; name: string; failed: number; ran: number; slowest: number; errors: string[] }>();
const durations: number[] = [];
let failedRuns = 0;
for (let run = 1; run <= runs; run++) {
  const { results, ms, status } = await once(run);
  durations.push(ms);
  const failed = results.filter((result) => !result.ok);
  if (failed.length || status !== 0 || results.length === 0) failedRuns++;
  console.log(`run ${run}/${runs}: ${results.length - failed.length} passed, ${failed.length} failed, status ${status}, ` +
    `${minutes(ms)}${failed.length ? `; failed: ${failed.map((result) => `${result.file} › ${result.name}`).join('; ')}` : ''}`);
  for (const result of results) {
    const key = `${result.file} › ${result.name}`;
    const entry = seen.get(key) ?? { file: result.file, name: result.name, failed: 0, ran: 0, slowest: 0, errors: [] };
    seen.set(key, entry);
    entry.ran++;
    entry.slowest = Math.max(entry.slowest, result.ms);
    if (!result.ok) {
      entry.failed++;
      entry.errors.push(`run ${run}: ${result.error}`);
    }
  }
}
stopSpinners();

const entries = [...seen.values()];
const flaky = entries.filter((entry) => entry.failed > 0).sort((a, b) => b.failed - a.failed);
console.log('');
if (flaky.length) {
  console.log('failed:');
  for (const entry of flaky) {
    console.log(`  ${entry.failed}/${entry.ran}  ${entry.file} › ${entry.name}`);
    for (const error of entry.errors) console.log(`        ${error}`);
  }
} else console.log('failed: none');
console.log('\nslowest (the longest each took in any run):');
for (const entry of [...entries].sort((a, b) => b.slowest - a.slowest).slice(0, 15)) {
  console.log(`${`${(entry.slowest / 1000).toFixed(1)} s`.padStart(9)}  ${entry.file} › ${entry.name}`);
}
const failures = entries.reduce((sum, entry) => sum + entry.failed, 0);
console.log(`\nsummary: ${runs} runs, ${entries.length} tests, ${failures} failures (${failedRuns} run(s) with one), ` +
  `runs took ${durations.map(minutes).join(', ')}; node ${process.version}, ${busy} core(s) busy`);
process.exitCode = failures || failedRuns ? 1 : 0;
