// How the steps grow: one message to a room of 100 (step 13); one worker and two, reached directly and through
// HAProxy (step 17); one to three machines behind HAProxy sharing one redis-server, and what the store costs a login
// (step 21, beside step 13).
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import { freePort, processTree } from '../helpers.ts';
import {
  alice, type Args, cpuMs, dir, env, fail, median, progress, type Rate, repeat, SECONDS, type Server, sessionRate, sleep,
  started, startStep,
} from './harness.ts';
import { close, connect } from './load.ts';

/**
 * Step 13's room with `members` clients in it (each a pty and a shell, joined eight at a time): the milliseconds
 * from one message sent to its arrival at every member, 20 messages one after the other (the median, and the
 * slowest), and the step's CPU per message.
 */
async function fanOut(server: Server, config: ConnectConfig, members: number) {
  const room: { client: ssh2.Client; channel: ssh2.ClientChannel; said: string }[] = [];
  for (let i = 0; i < members; i += 8) {
    room.push(...await Promise.all(Array.from({ length: Math.min(8, members - i) }, async () => {
      const client = await connect({ port: server.port, ...config });
      const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm', cols: 200, rows: 30 }, (err, c) => (err ? reject(err) : resolve(c))));
      const member = { client, channel, said: '' };
      channel.on('data', (chunk: Buffer) => (member.said += chunk.toString()));
      return member;
    })));
  }
  await sleep(500); // the join notices have all gone out
  const times: number[] = [];
  const cpuBefore = cpuMs(server.pid);
  for (let n = 0; n < 20; n++) {
    for (const member of room) member.said = '';
    const begun = performance.now();
    room[0]!.channel.write(`ping ${n}\r`);
    while (!room.every((member) => member.said.includes(`: ping ${n}\r\n`))) await sleep(1);
    times.push(performance.now() - begun);
  }
  const cpuPerMessage = (cpuMs(server.pid) - cpuBefore) / 20;
  await Promise.all(room.map(({ client }) => close(client)));
  return { p50: median(times), max: Math.max(...times), cpuPerMessage };
}

/** Measures the room, the workers and the machines into `results.fanOut`, `results.cluster` and `results.fleet`. */
export async function measureScaling(args: Args, results: Record<string, any>): Promise<void> {
  // One message to 100 people: step 13's room.
  if (!args.attacks && 'step 13'.includes(args.only ?? '')) {
    progress('step 13: one message to 100 members of the room');
    const chat = await startStep('13-chat-room.ts', { ...env, CHAT_RATE: '1000000', MAX_SESSIONS: '10' });
    results.fanOut = await repeat(() => fanOut(chat, alice.password, 100));
    await chat.stop();
  }

  // Step 17 with one worker and with two, reached directly and through HAProxy (PROXY v2): how it scales with cores.
  if (!args.attacks && 'step 17 haproxy'.includes(args.only ?? '')) {
    const haproxy = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).stdout.trim();
    if (!haproxy) progress('HAProxy left out: not installed (Debian: apt-get install -y haproxy)');
    /** CPU time of every process of the step (the primary and its workers), and of HAProxy. */
    const treeCpu = (pid: number) => processTree(pid).reduce((sum, each) => sum + cpuMs(each), 0);
    const cluster: Record<string, Rate & { haproxyCpuPerSession?: number }> = {};
    results.cluster = cluster;
    for (const workers of [1, 2]) {
      // HAProxy connects to the step from 127.0.0.9: the one address whose connections must start with a header.
      const step = await startStep('17-every-core.ts', { ...env, WORKERS: String(workers), PROXY_PROTOCOL_FROM: '127.0.0.9' });
      await sleep(1000); // every worker listening, not only the first
      const server = { port: step.port, pid: step.group, stop: async () => {}, cpu: () => treeCpu(step.group) };
      progress(`step 17, ${workers} worker(s), direct: session rate, eight clients at a time`);
      cluster[`${workers} worker(s), direct`] = await repeat(() => sessionRate(server, alice.password, 8));
      if (haproxy) {
        const front = await freePort();
        const config = join(dir, 'haproxy.cfg');
        writeFileSync(config, ['defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 60s',
          '  timeout server 60s', 'frontend ssh', `  bind 127.0.0.1:${front}`, '  default_backend step',
          'backend step', `  server step 127.0.0.1:${step.port} send-proxy-v2 source 127.0.0.9`, ''].join('\n'));
        const balancer = spawn(haproxy, ['-db', '-f', config], { stdio: 'ignore' });
        started.push(balancer);
        await sleep(500);
        progress(`step 17, ${workers} worker(s), through HAProxy: session rate, eight clients at a time`);
        const haproxyBefore = cpuMs(balancer.pid!);
        let sessions = 0;
        const rate = await repeat(async () => {
          const measured = await sessionRate({ ...server, port: front }, alice.password, 8);
          sessions += measured.perSecond * SECONDS;
          return measured;
        });
        cluster[`${workers} worker(s), through HAProxy`] = { ...rate, haproxyCpuPerSession: (cpuMs(balancer.pid!) - haproxyBefore) / sessions };
        balancer.kill('SIGKILL');
      }
      process.kill(-step.group, 'SIGTERM');
      await sleep(500);
    }
    console.table(Object.fromEntries(Object.entries(cluster).map(([name, r]) => [name, {
      'sessions/s': r.perSecond.toFixed(0),
      'step CPU ms/session': r.cpuPerSession.toFixed(2),
      'HAProxy CPU ms/session': r.haproxyCpuPerSession?.toFixed(2) ?? '',
      'load generator CPU %': r.loadGeneratorCpuPercent.toFixed(0),
    }])));
  }

  // Step 21: 1, 2 and 3 machines (each a step process on a loopback address of its own) behind HAProxy, sharing one
  // redis-server; and what the store costs a login: its round trips (counted by the store itself) and the time they
  // add, step 21 beside step 13 (which keeps everything in its process), one client at a time, in the same run.
  if (!args.attacks && 'step 21 fleet haproxy'.includes(args.only ?? '')) {
    const which = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    const [haproxy, redis] = [which('haproxy'), which('redis-server')];
    if (!haproxy || !redis) progress('step 21 left out: it needs haproxy and redis-server (Debian: apt-get install -y haproxy redis-server)');
    else {
      const storePort = await freePort();
      const store = spawn(redis, ['--port', String(storePort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      started.push(store);
      /**
       * The commands clients have sent the store: the calls of EVALSHA, EVAL, PUBLISH, PING and SUBSCRIBE in INFO
       * commandstats (each a round trip of the steps'; the commands a script runs inside the store count apart).
       */
      const commandsRun = async () => {
        for (let attempt = 0; ; attempt++) {
          const answer = await new Promise<string>((resolve) => {
            const socket = createConnection(storePort, '127.0.0.1');
            let text = '';
            socket.on('data', (chunk) => {
              text += chunk;
              const header = /^\$(\d+)\r\n/.exec(text); // a bulk string: $LENGTH, then the text and CR LF
              if (header && Buffer.byteLength(text) >= header[0].length + Number(header[1]) + 2) socket.destroy();
            });
            socket.on('error', () => {});
            socket.on('close', () => resolve(text));
            socket.write('INFO commandstats\r\n');
          });
          if (answer.startsWith('$')) {
            return [...answer.matchAll(/^cmdstat_(?:evalsha|eval|publish|ping|subscribe):calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
          }
          if (attempt === 50) fail('redis-server did not start');
          await sleep(100);
        }
      };
      await commandsRun();
      const storeEnv = { ...env, STORE_URL: `redis://127.0.0.1:${storePort}` };
      const fleet: Record<string, Rate & { haproxyCpuPerSession?: number; storeRoundTrips?: number; storeCpuPerSession?: number }> = {};
      results.fleet = fleet;
      for (const [name, file, stepEnv] of [['step 13, alone', '13-chat-room.ts', env], ['step 21, one machine and its store', '21-fleet.ts', storeEnv]] as const) {
        const step = await startStep(file, stepEnv);
        await sleep(1000); // connected to the store
        progress(`${name}: session rate, one client at a time`);
        const before = await commandsRun();
        const storeBefore = cpuMs(store.pid!);
        let sessions = 0;
        const rate = await repeat(async () => {
          const measured = await sessionRate({ port: step.port, pid: step.pid, stop: step.stop }, alice.password, 1);
          sessions += Math.round(measured.perSecond * SECONDS);
          return measured;
        });
        const storeRoundTrips = ((await commandsRun()) - before) / sessions;
        const storeCpuPerSession = (cpuMs(store.pid!) - storeBefore) / sessions;
        fleet[name] = { ...rate, ...(file === '21-fleet.ts' ? { storeRoundTrips, storeCpuPerSession } : {}) };
        await step.stop();
      }
      const treeCpu = (groups: number[]) => groups.reduce((sum, group) => sum + processTree(group).reduce((all, each) => all + cpuMs(each), 0), 0);
      for (const count of [1, 2, 3]) {
        const machines: Awaited<ReturnType<typeof startStep>>[] = [];
        for (let i = 0; i < count; i++) {
          machines.push(await startStep('21-fleet.ts', { ...storeEnv, HOST: `127.0.0.${2 + i}`, MACHINE: `m${i + 1}`, PROXY_PROTOCOL_FROM: '127.0.0.1' }));
        }
        await sleep(1000);
        const front = await freePort();
        const config = join(dir, 'haproxy-fleet.cfg');
        writeFileSync(config, ['defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 60s', '  timeout server 60s',
          'frontend ssh', `  bind 127.0.0.1:${front}`, '  default_backend fleet', 'backend fleet', '  balance roundrobin',
          ...machines.map((machine, i) => `  server m${i + 1} 127.0.0.${2 + i}:${machine.port} send-proxy-v2`), ''].join('\n'));
        const balancer = spawn(haproxy, ['-db', '-f', config], { stdio: 'ignore' });
        started.push(balancer);
        await sleep(500);
        const server = { port: front, pid: machines[0]!.pid, stop: async () => {}, cpu: () => treeCpu(machines.map((m) => m.group)) };
        progress(`step 21, ${count} machine(s) behind HAProxy: session rate, eight clients at a time`);
        const haproxyBefore = cpuMs(balancer.pid!);
        const before = await commandsRun();
        const storeBefore = cpuMs(store.pid!);
        let sessions = 0;
        const rate = await repeat(async () => {
          const measured = await sessionRate(server, alice.password, 8);
          sessions += Math.round(measured.perSecond * SECONDS);
          return measured;
        });
        fleet[`${count} machine(s) behind HAProxy`] = { ...rate, haproxyCpuPerSession: (cpuMs(balancer.pid!) - haproxyBefore) / sessions,
          storeRoundTrips: ((await commandsRun()) - before) / sessions, storeCpuPerSession: (cpuMs(store.pid!) - storeBefore) / sessions };
        balancer.kill('SIGKILL');
        for (const machine of machines) process.kill(-machine.group, 'SIGTERM');
        await sleep(500);
      }
      store.kill('SIGKILL');
      console.table(Object.fromEntries(Object.entries(fleet).map(([name, r]) => [name, {
        'sessions/s': r.perSecond.toFixed(0),
        'p50 ms': r.p50.toFixed(1),
        'steps CPU ms/session': r.cpuPerSession.toFixed(2),
        'HAProxy CPU ms/session': r.haproxyCpuPerSession?.toFixed(2) ?? '',
        'store round trips/session': r.storeRoundTrips?.toFixed(2) ?? '',
        'store CPU ms/session': r.storeCpuPerSession?.toFixed(3) ?? '',
        'load generator CPU %': r.loadGeneratorCpuPercent.toFixed(0),
      }])));
      const alone = fleet['step 13, alone']!;
      const shared = fleet['step 21, one machine and its store']!;
      console.log(`the store's cost per login: ${shared.storeRoundTrips!.toFixed(2)} round trips, ${shared.storeCpuPerSession!.toFixed(3)} ms of the store's CPU, `
        + `${(shared.p50 - alone.p50).toFixed(2)} ms of a session at c=1 (p50 ${shared.p50.toFixed(2)} against ${alone.p50.toFixed(2)} ms); `
        + `${cpus().length} cores here run the machines, HAProxy, the store and the load generator together`);
    }
  }
}
