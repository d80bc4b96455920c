// One load process of `npm run bench`: one Node.js process can drive only so many sessions a second, so at c=8
// the bench spreads the clients over several. Reads its task as JSON from its argument, says `ready`, starts on a
// line of standard input, and prints its latencies, failures and CPU time as one JSON line.
import { once } from 'node:events';
import { lanes, paced } from './load.ts';

const task = JSON.parse(process.argv[2]!) as {
  config: Record<string, unknown>; lanes: number; seconds: number; sessions?: number; perSecond?: number;
};
if (typeof task.config.privateKey === 'string') task.config.privateKey = Buffer.from(task.config.privateKey, 'base64');
console.log('ready');
await once(process.stdin, 'data');
const cpuBefore = process.cpuUsage();
const begun = performance.now();
// At a fixed rate (`perSecond`, for `sessions`), or as fast as `lanes` sessions at a time go.
const { latencies, failed, timedOut, late } = task.perSecond
  ? await paced(task.config, task.perSecond, task.sessions!)
  : { ...await lanes(task.config, task.lanes, begun + task.seconds * 1000, task.sessions), late: 0 };
const cpu = process.cpuUsage(cpuBefore);
const report = JSON.stringify({
  latencies, failed, timedOut, late, elapsed: (performance.now() - begun) / 1000, cpuMs: (cpu.user + cpu.system) / 1000,
});
// Exit once the line is written: a pipe takes 64 KiB at a time, and a soak's latencies are more.
process.stdout.write(`${report}\n`, () => process.exit(0));
