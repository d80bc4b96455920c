// --soak N: N sessions at c=8, the server and the load on one Node, and the step must go on answering throughout.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { residentMiB } from '../hostile.ts';
import { alice, CURRENT_LTS, cpuMs, env, fail, progress, runLoad, startStep, todayNodes } from './harness.ts';
import { session } from './load.ts';

export async function measureSoak(count: string): Promise<void> {
  const sessions = Number(count);
  if (!Number.isInteger(sessions) || sessions < 1) fail('--soak takes a whole number of sessions from 1');
  const lts = join(todayNodes, 'node26', 'bin');
  const runtimes: [string, string | undefined][] = [[`Node ${process.versions.node} (this machine's)`, undefined]];
  if (existsSync(join(lts, 'node')) && !process.version.startsWith('v26.')) runtimes.push([CURRENT_LTS, lts]);
  else if (!process.version.startsWith('v26.')) console.log(`soak: no ${CURRENT_LTS} under ${todayNodes} (bash .ci/today installs it)`);
  const rows: Record<string, Record<string, string | number>> = {};
  let broken = '';
  // Today's clients' exchange, and the cheaper one, which makes more key pairs a second.
  const exchanges = ['mlkem768x25519-sha256', 'curve25519-sha256'] as const;
  for (const [runtime, nodeDir] of runtimes) for (const kex of exchanges) {
    const name = `${runtime}, ${kex}`;
    const config = { ...alice.password, algorithms: { kex: [kex as 'curve25519-sha256'] } };
    // At least 50 sessions a second, or the run is late (a step serves hundreds).
    const seconds = Math.ceil(sessions / 50);
    progress(`soak: ${sessions} sessions of step 03 at c=8, ${name}`, seconds + 120);
    const step = await startStep('03-trivial-channel.ts', env, [], nodeDir);
    const cpuBefore = cpuMs(step.pid);
    const rssBefore = residentMiB(step.pid);
    const run = await runLoad({ port: step.port, ...config }, 8, { seconds, sessions, nodeDir });
    const cpuAfter = cpuMs(step.pid);
    const rssAfter = residentMiB(step.pid);
    // One more, after the load: a step that stopped answering fails it.
    const answers = await session({ port: step.port, ...config }).then(() => 'yes', (err) => `no (${err.message})`);
    await step.stop();
    rows[name] = {
      sessions: run.latencies.length, failed: run.failed, 'timed out': run.timedOut,
      seconds: run.elapsed.toFixed(0), 'sessions/s': (run.latencies.length / run.elapsed).toFixed(0),
      'CPU ms/session': ((cpuAfter - cpuBefore) / run.latencies.length).toFixed(2),
      'RSS MiB before/after': `${rssBefore.toFixed(0)} / ${rssAfter.toFixed(0)}`, 'answers after': answers,
    };
    if (run.timedOut || answers !== 'yes' || run.latencies.length < sessions) {
      broken ||= `${name}: ${run.latencies.length} of ${sessions} sessions made, ${run.timedOut} timed out, answers after: ${answers}`;
    }
  }
  console.table(rows);
  if (broken) fail(broken);
}
