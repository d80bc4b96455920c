// The test command's reporter: node:test's own `spec` output, then the 15 slowest tests with their times, then one
// closing line `tests: N passed, N failed`. With TEST_RESULTS=FILE it also writes one JSON line a test to FILE
// ({ file, name, ok, ms, error }), which `npm run flakes` reads.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { Transform } from 'node:stream';
import { spec } from 'node:test/reporters';

/** What node:test tells a reporter of a test that started or ended (the fields this reporter reads). */
interface TestEvent {
  type: string;
  data: {
    name: string;
    nesting: number;
    file?: string;
    details?: { duration_ms?: number; type?: string; error?: { message?: string; cause?: unknown } };
  };
}

export interface TestResult {
  file: string;
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

const results: TestResult[] = [];
/** Per file, the names of the tests and suites that have started and not ended, by nesting: each test's full name. */
const open = new Map<string, string[]>();
const resultsFile = process.env.TEST_RESULTS;

function record(event: TestEvent): void {
  const { name, nesting, details } = event.data;
  const file = event.data.file ? relative(process.cwd(), event.data.file) : '';
  const path = open.get(file) ?? [];
  open.set(file, path);
  if (event.type === 'test:start') {
    path.length = nesting;
    path.push(name);
    return;
  }
  if (event.type !== 'test:pass' && event.type !== 'test:fail') return;
  // A suite is counted by its tests; a suite's own failure (a hook, a crash of the file) is a result of its own.
  const failedAlone = event.type === 'test:fail' && !/^\d+ subtests? failed$/.test(details?.error?.message ?? '');
  if (details?.type === 'suite' && !failedAlone) return;
  const result: TestResult = {
    file, name: event.data.file === name ? '(the file itself)' : [...path.slice(0, nesting), name].join(' › '),
    ok: event.type === 'test:pass',
    ms: Math.round(details?.duration_ms ?? 0),
  };
  if (!result.ok) result.error = String(details?.error?.cause ?? details?.error?.message ?? 'failed').split('\n')[0]!.slice(0, 300);
  results.push(result);
  if (resultsFile) appendFileSync(resultsFile, `${JSON.stringify(result)}\n`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function closing(): string {
  const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 15);
  const passed = results.filter((result) => result.ok).length;
  return [
    '',
    `the ${slowest.length} slowest tests:`,
    ...slowest.map((result) => `${seconds(result.ms).padStart(8)}  ${result.file} › ${result.name}`),
    '',
    `tests: ${passed} passed, ${results.length - passed} failed`,
    '',
  ].join('\n');
}

const pretty = new spec();
const reporter = new Transform({
  writableObjectMode: true,
  transform(event: TestEvent, _encoding, done) {
    record(event);
    pretty.write(event);
    done();
  },
  flush(done) {
    pretty.once('end', () => {
      this.push(closing());
      done();
    });
    pretty.end();
  },
});
pretty.on('data', (chunk: Buffer | string) => reporter.push(chunk));

export default reporter;
