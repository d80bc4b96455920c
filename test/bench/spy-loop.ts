// Loaded before a step with `--import`, for every step the bench starts when BENCH_STEP_IMPORT names it:
// `BENCH_STEP_IMPORT=./test/bench/spy-loop.ts npm run bench -- --attacks --only "NUL bytes, four"`. As the step
// exits, one line goes to SPY_LOOP_FILE (the system's temporary folder unless set): its `spawn` calls (how many,
// and how long each held the event loop, for Node forks the whole process), its event loop's delays from 2 s after
// it began, and its garbage collections. Not part of any figure the bench prints: where a step's loop stood still.
import childProcess from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const spawns: number[] = [];
let rssMax = 0;
const spawn = childProcess.spawn;
childProcess.spawn = function timed(this: unknown, ...args: Parameters<typeof spawn>) {
  const begun = performance.now();
  const child = spawn.apply(this, args);
  spawns.push(performance.now() - begun);
  rssMax = Math.max(rssMax, process.memoryUsage.rss());
  return child;
} as typeof spawn;
syncBuiltinESMExports(); // `import { spawn } from 'node:child_process'` gets this one too

const delays = monitorEventLoopDelay({ resolution: 5 });
delays.enable();
setTimeout(() => delays.reset(), 2000).unref(); // start-up (loading, the host keys) left out: the step listens by then
const collections: number[] = [];
new PerformanceObserver((list) => list.getEntries().forEach((entry) => collections.push(entry.duration))).observe({ entryTypes: ['gc'] });

process.on('exit', () => {
  const ms = (values: number[], at: number) => (values.sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(at * values.length))] ?? 0).toFixed(1);
  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0).toFixed(0);
  appendFileSync(process.env.SPY_LOOP_FILE || join(tmpdir(), 'conch-steps-spy-loop.txt'), `${basename(process.argv[1] ?? '')} (pid ${process.pid}): `
    + `${spawns.length} spawns, ${sum(spawns)} ms in all, p50 ${ms(spawns, 0.5)} ms, max ${ms(spawns, 1)} ms, RSS at most ${(rssMax / 2 ** 20).toFixed(0)} MiB; `
    + `event loop late p99 ${(delays.percentile(99) / 1e6).toFixed(1)} ms, max ${(delays.max / 1e6).toFixed(1)} ms; `
    + `${collections.length} garbage collections, ${sum(collections)} ms in all, max ${ms(collections, 1)} ms\n`);
});
