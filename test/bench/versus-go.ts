// --versus-go: step 03 against today's peer, Go 1.27's x/crypto/ssh, with both key exchanges. Each figure is a
// sample of MEASURED sessions after WARM_UP others of the same kind, at a fixed rate (an open loop, below saturation)
// or eight at a time (saturation), made by two load generators on different stacks: ssh2's client (load-process.ts)
// and Go's (go-load.go). The two servers alternate within each kind of sample.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type ssh2 from 'ssh2';
import { root } from '../helpers.ts';
import {
  alice, connectPatiently, cpuMs, CURRENT_LTS, dir, env, fail, limitedBy, median, memoryBytes, negotiated, privateBytes,
  progress, runLoad, type Server, sleep, startGoServer, startStep, todayNodes,
} from './harness.ts';
import { close } from './load.ts';
import { cpuByKind, perfMissing } from './perf.ts';
import { buildWithTodaysGo, projectUnder } from './today.ts';
import { bindingProblem } from '../../shared/tools/crypto-binding.ts';

export async function measureVersusGo(json: string | undefined): Promise<void> {
  const WARM_UP = 500;
  const MEASURED = 1000;
  const built = buildWithTodaysGo(['go-server', 'go-load'], dir);
  if ('why' in built) fail(`Go 1.27 left out: ${built.why}`);
  const lts = join(todayNodes, 'node26', 'bin');
  const runtimes: { label: string; nodeDir?: string; tree?: string }[] = [];
  if (existsSync(join(lts, 'node'))) {
    progress(`${CURRENT_LTS}: the project with node_modules installed under it (once; then kept)`, 900);
    const made = projectUnder(lts, 'node26');
    if ('why' in made) fail(made.why);
    runtimes.push({ label: CURRENT_LTS, nodeDir: lts, tree: made.tree });
  } else {
    progress(`${CURRENT_LTS} left out: not under ${todayNodes} (sudo bash .ci/today installs it)`);
  }
  if (!process.version.startsWith('v26.')) runtimes.push({ label: `Node ${process.versions.node}` });
  const kinds = [{ mode: '100/s', perSecond: 100 }, { mode: '200/s', perSecond: 200 }, { mode: 'saturation (c=8)', concurrency: 8 }];
  const rows: Record<string, Record<string, string | number>> = {};
  const figures: Record<string, { perSecond: number; cpuPerSession: number }> = {};
  const goals: [string, number, number, '<=' | '>='][] = [];
  const alongside: Record<string, Record<string, number>> = {};
  const versusGo: Record<string, unknown> = { go: built.version, node: process.version, rows, alongside };
  console.log(`Go: ${built.version}; x/crypto 0.58 (Debian testing)`);

  /** One sample: `sessions` sessions of `kind` against `server` from load generator `load`; what they cost. */
  const sample = async (server: Server, kex: string, kind: (typeof kinds)[number], load: 'ssh2' | 'go', sessions: number, nodeDir?: string) => {
    const cpuBefore = cpuMs(server.pid);
    let made: { sessions: number; failed: number; late: number; elapsed: number; loadCpuMs: number; p50: number };
    if (load === 'ssh2') {
      const config = { port: server.port, ...alice.password, algorithms: { kex: [kex as 'curve25519-sha256'] } };
      const run = await runLoad(config, kind.concurrency ?? 8, { sessions, nodeDir, perSecond: kind.perSecond, seconds: 3600 });
      run.latencies.sort((a, b) => a - b);
      made = { sessions: run.latencies.length, failed: run.failed, late: run.late, elapsed: run.elapsed, loadCpuMs: run.loadCpuMs,
        p50: run.latencies[Math.floor(run.latencies.length / 2)] ?? 0 };
    } else {
      const ran = spawnSync(join(dir, 'go-load'), [String(server.port), kex, kind.perSecond ? 'rate' : 'c',
        String(kind.perSecond ?? kind.concurrency), String(sessions)], { encoding: 'utf8', timeout: 600_000 });
      if (ran.status !== 0) fail(`go-load: ${ran.stderr.trim()}`);
      const report = JSON.parse(ran.stdout) as { sessions: number; failed: number; late: number; elapsed: number; cpuMs: number; p50: number };
      made = { ...report, loadCpuMs: report.cpuMs };
    }
    await sleep(100);
    const serverCpuMs = cpuMs(server.pid) - cpuBefore;
    return { ...made, serverCpuMs };
  };

  for (const { label, nodeDir, tree = root } of runtimes) {
    // ssh2's own AES-GCM and ChaCha20-Poly1305 (a C++ addon, optional): without it, ssh2 uses node:crypto.
    const problem = bindingProblem(tree, nodeDir ? join(nodeDir, 'node') : process.execPath);
    console.log(`${label}: ssh2's crypto binding ${problem ? `not in use (${problem}): its ciphers come from node:crypto` : 'in use'}`);
  }
  for (const { label, nodeDir, tree } of runtimes) for (const kex of ['mlkem768x25519-sha256', 'curve25519-sha256']) {
    progress(`versus Go: ${label}, ${kex}: starting step 03 and Go`);
    const step = await startStep('03-trivial-channel.ts', env, [], nodeDir, tree);
    const alone = await startStep('test/bench/ssh2-server.ts', env, [], nodeDir, tree);
    const go = await startGoServer(join(dir, 'go-server'));
    const servers = [['step 03', step], ['ssh2 alone', alone], ['Go 1.27', go]] as const;
    const negotiatedBy: Record<string, string> = {};
    for (const [name, server] of servers) {
      negotiatedBy[name] = await negotiated({ port: server.port, ...alice.password, algorithms: { kex: [kex as 'curve25519-sha256'] } });
    }
    for (const kind of kinds) for (const load of ['ssh2', 'go'] as const) {
      // In turn: step 03, ssh2 alone, Go (warm-ups first, each on its own server).
      for (const [name, server] of servers) {
        progress(`versus Go: ${label}, ${kex}, ${kind.mode}, load by ${load}: ${name}, ${WARM_UP} sessions to warm up`);
        await sample(server, kex, kind, load, WARM_UP, nodeDir);
      }
      for (const [name, server] of servers) {
        progress(`versus Go: ${label}, ${kex}, ${kind.mode}, load by ${load}: ${name}, ${MEASURED} sessions`);
        const got = await sample(server, kex, kind, load, MEASURED, nodeDir);
        const rate = { serverCpuPercent: (got.serverCpuMs / (got.elapsed * 1000)) * 100, loadGeneratorCpuPercent: (got.loadCpuMs / (got.elapsed * 1000)) * 100 };
        const key = `${label} | ${kex.replace('-sha256', '')} | ${kind.mode} | load ${load} | ${name}`;
        figures[key] = { perSecond: got.sessions / got.elapsed, cpuPerSession: got.serverCpuMs / got.sessions };
        rows[key] = {
          'sessions/s': Number((got.sessions / got.elapsed).toFixed(0)),
          'server CPU ms/session': Number((got.serverCpuMs / got.sessions).toFixed(3)),
          'server CPU %': Number(rate.serverCpuPercent.toFixed(0)),
          'load CPU ms/session': Number((got.loadCpuMs / got.sessions).toFixed(2)),
          'p50 ms': Number(got.p50.toFixed(1)),
          'late, failed': `${got.late}, ${got.failed}`,
          'limited by': kind.perSecond ? (got.late ? 'late starts' : 'the rate') : limitedBy(rate).replace('the load', 'the load generator'),
          negotiated: negotiatedBy[name],
        };
      }
      const pair = (name: string) => figures[`${label} | ${kex.replace('-sha256', '')} | ${kind.mode} | load ${load} | ${name}`]!;
      const where = `${label}, ${kex.replace('-sha256', '')}, ${kind.mode}, load ${load}`;
      goals.push([`CPU per session, step 03 / Go: ${where}`, pair('step 03').cpuPerSession / pair('Go 1.27').cpuPerSession, 0.8, '<=']);
      // Not a goal: how much of step 03's cost is ssh2's, and how much the project's own layer adds.
      alongside[`${where}: ssh2 alone / Go, step 03 / ssh2 alone`] = {
        'CPU ssh2 alone / Go': Number((pair('ssh2 alone').cpuPerSession / pair('Go 1.27').cpuPerSession).toFixed(2)),
        'CPU step 03 / ssh2 alone': Number((pair('step 03').cpuPerSession / pair('ssh2 alone').cpuPerSession).toFixed(2)),
        'step 03 minus ssh2 alone, ms': Number((pair('step 03').cpuPerSession - pair('ssh2 alone').cpuPerSession).toFixed(3)),
        ...(kind.perSecond ? {} : { 'rate ssh2 alone / Go': Number((pair('ssh2 alone').perSecond / pair('Go 1.27').perSecond).toFixed(2)) }),
      };
      if (!kind.perSecond) goals.push([`sessions/s, step 03 / Go: ${where}`, pair('step 03').perSecond / pair('Go 1.27').perSecond, 1.2, '>=']);
    }
    await step.stop();
    await alone.stop();
    await go.stop();
  }
  // 10,000 idle logged-in connections on one step 03: its memory, and its session rate while it holds them (Go's
  // client at c=8, so that the step is the limit) against the same step empty. Held by ssh2's client in this
  // process, which logs them in eight at a time; the file-descriptor limit here (20,000 for both ends) suffices.
  const HELD = 10_000;
  const held: Record<string, Record<string, string | number>> = {};
  versusGo.held = held;
  for (const { label, nodeDir, tree } of runtimes) {
    const step = await startStep('03-trivial-channel.ts', { ...env, MAX_CONNECTIONS: String(HELD + 100) }, [], nodeDir, tree);
    const kind = kinds.find((each) => each.concurrency)!;
    const kex = 'mlkem768x25519-sha256';
    progress(`versus Go: ${label}: step 03 empty, ${WARM_UP} sessions to warm up, then ${MEASURED}`);
    await sample(step, kex, kind, 'go', WARM_UP);
    const empty = await sample(step, kex, kind, 'go', MEASURED);
    await sleep(1000);
    const before = { pss: memoryBytes(step.pid), private: privateBytes(step.pid) };
    progress(`versus Go: ${label}: ${HELD} idle logged-in connections to step 03`, 900);
    const clients: ssh2.Client[] = [];
    const config = { port: step.port, ...alice.password, algorithms: { kex: ['curve25519-sha256' as const] } };
    for (let i = 0; i < HELD; i += 8) {
      clients.push(...await Promise.all(Array.from({ length: Math.min(8, HELD - i) }, () => connectPatiently(config))));
    }
    await sleep(1000);
    const after = { pss: memoryBytes(step.pid), private: privateBytes(step.pid) };
    progress(`versus Go: ${label}: step 03 holding ${HELD}, ${MEASURED} sessions`);
    const holding = await sample(step, kex, kind, 'go', MEASURED);
    await Promise.all(clients.map(close));
    await step.stop();
    const rateEmpty = empty.sessions / empty.elapsed;
    const rateHolding = holding.sessions / holding.elapsed;
    held[label] = {
      'memory MiB (PSS), empty': Number((before.pss / 2 ** 20).toFixed(1)),
      [`memory MiB (PSS), ${HELD} idle`]: Number((after.pss / 2 ** 20).toFixed(1)),
      'private KiB per idle connection': Number(((after.private - before.private) / HELD / 1024).toFixed(1)),
      'sessions/s empty': Number(rateEmpty.toFixed(0)),
      'sessions/s holding them': Number(rateHolding.toFixed(0)),
    };
    goals.push([`${HELD} idle: memory MiB, ${label}`, after.pss / 2 ** 20, 256, '<=']);
    goals.push([`${HELD} idle: session rate held / empty, ${label}`, rateHolding / rateEmpty, 0.9, '>=']);
    goals.push([`${HELD} idle: private KiB per connection, ${label}`, (after.private - before.private) / HELD / 1024, 12, '<=']);
  }
  // Where each server's CPU goes (perf), on the first runtime, mlkem768x25519, Go's client at c=8.
  const whereCpuGoes: Record<string, Record<string, number | string>> = {};
  versusGo.whereCpuGoes = whereCpuGoes;
  const noPerf = perfMissing();
  if (noPerf) progress(`where the CPU goes: left out, ${noPerf}`);
  else for (const { label, nodeDir, tree } of runtimes.slice(0, 1)) {
    const kex = 'mlkem768x25519-sha256';
    const kind = kinds.find((each) => each.concurrency)!;
    for (const name of ['step 03', 'ssh2 alone', 'Go 1.27']) {
      const server = name === 'step 03' ? await startStep('03-trivial-channel.ts', env, [], nodeDir, tree)
        : name === 'ssh2 alone' ? await startStep('test/bench/ssh2-server.ts', env, [], nodeDir, tree)
          : await startGoServer(join(dir, 'go-server'));
      progress(`where the CPU goes: ${label}, ${name}, ${WARM_UP} sessions to warm up, then ${2 * MEASURED} under perf`);
      await sample(server, kex, kind, 'go', WARM_UP);
      let got: Awaited<ReturnType<typeof sample>> | undefined;
      const { shares, samples } = await cpuByKind(server.pid, join(dir, 'perf.data'), async () => {
        got = await sample(server, kex, kind, 'go', 2 * MEASURED);
      });
      await server.stop();
      const perSession = got!.serverCpuMs / got!.sessions;
      whereCpuGoes[`${label}, ${name}`] = {
        'CPU ms/session': Number(perSession.toFixed(3)),
        ...Object.fromEntries(Object.entries(shares).map(([what, share]) => [`${what}, ms`, Number((share * perSession).toFixed(3))])),
        'perf samples': samples,
      };
    }
  }
  const startups: number[] = [];
  const toolsAlone: number[] = [];
  if (runtimes[0]?.tree) {
    for (let run = 0; run < 5; run++) {
      progress(`start-up of npx tsx steps/03-trivial-channel.ts on ${CURRENT_LTS}, and of the tools alone (${run + 1} of 5)`);
      const step = await startStep('03-trivial-channel.ts', env, [], runtimes[0].nodeDir, runtimes[0].tree);
      startups.push(step.startupMs);
      await step.stop();
      const nothing = await startStep('test/bench/tools-alone.ts', env, [], runtimes[0].nodeDir, runtimes[0].tree);
      toolsAlone.push(nothing.startupMs);
      await nothing.stop();
    }
    versusGo.startup = { step03: startups, toolsAlone };
  }
  console.table(rows);
  console.table(alongside);
  console.table(held);
  if (Object.keys(whereCpuGoes).length) console.table(whereCpuGoes);
  const goalRows = Object.fromEntries(goals.map(([what, ratio, target, sense]) => {
    const met = sense === '<=' ? ratio <= target : ratio >= target;
    return [what, { figure: Number(ratio.toFixed(2)), goal: `${sense} ${target}`,
      '': met ? 'met' : `MISSED by ${(Math.abs(ratio / target - 1) * 100).toFixed(0)} %` }];
  }));
  if (startups.length) {
    const ms = median(startups);
    goalRows[`start-up on ${CURRENT_LTS}, ms (median of 5)`] = { figure: Number(ms.toFixed(0)), goal: '<= 300', '': ms <= 300 ? 'met' : `MISSED by ${(ms / 300 * 100 - 100).toFixed(0)} %` };
    // Not a goal: npx tsx with a file that does nothing, the floor under any step's start-up.
    const tools = median(toolsAlone);
    goalRows[`(the tools alone: npx tsx, a file that does nothing, ms; step 03's own part: ${(ms - tools).toFixed(0)} ms)`] = { figure: Number(tools.toFixed(0)), goal: '', '': '' };
  }
  console.table(goalRows);
  versusGo.goals = goalRows;
  const file = json ?? join(tmpdir(), `conch-steps-bench-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(versusGo, null, 2));
  console.log(`all figures: ${file}`);
}
