// One load process of `npm run bench`: one Node.js process can drive only so many sessions a second, so at c=8
// the bench spreads the clients over several. Reads its task as JSON from its argument, says `ready`, starts on a
// line of standard input, and prints its latencies, failures and CPU time as one JSON line.
import { once } from 'node:events';
import { lanes } from './bench-session.ts';

const task = JSON.parse(process.argv[2]!) as {
  config: Record<string, unknown>; lanes: number; seconds: number; sessions?: number;
};
if (typeof task.config.privateKey === 'string') task.config.privateKey = Buffer.from(task.config.privateKey, 'base64');
console.log('ready');
await once(process.stdin, 'data');
const cpuBefore = process.cpuUsage();
const begun = performance.now();
const { latencies, failed, timedOut } = await lanes(task.config, task.lanes, begun + task.seconds * 1000, task.sessions);
const cpu = process.cpuUsage(cpuBefore);
const report = JSON.stringify({
  latencies, failed, timedOut, elapsed: (performance.now() - begun) / 1000, cpuMs: (cpu.user + cpu.system) / 1000,
});
// Exit once the line is written: a pipe takes 64 KiB at a time, and a soak's latencies are more.
process.stdout.write(`${report}\n`, () => process.exit(0));
