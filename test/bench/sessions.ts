// The servers side by side: step 03 (with the demo password file; with Nagle's algorithm left on by nagle-on.ts;
// with the client asking for the RSA host key; with the Curve25519 exchange; with an scrypt-hashed password), step
// 09 (public key), OpenSSH's sshd (sshd.ts) and Go's x/crypto/ssh (go-server.go): for each, sessions a second one
// client and eight at a time, their latency and CPU, and memory per idle connection; and step 03's start-up on each
// Node. report.ts sets them against each other.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import type ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import { root } from '../helpers.ts';
import {
  alice, type Args, connectPatiently, dir, env, hashedPasswords, IDLE_SESSIONS, median, memoryBytes,
  negotiated, progress, type Rate, repeat, RUNS, SECONDS, type Server, sessionRate, sessionsDone, sleep,
  startGoServer, startStep, todayNodes, userKey, userPublicKey,
} from './harness.ts';
import { close } from './load.ts';
import { findSshd, type Sshd, SSHD_USER, startSshd } from './sshd.ts';
import { bindingProblem } from '../../shared/tools/crypto-binding.ts';

const WARM_UP_LOGINS = 200;

/**
 * Memory added per logged-in connection that does nothing, with IDLE_SESSIONS of them open at once. Measured from
 * a server that has served WARM_UP_LOGINS logins first, as every server has once it has served anyone: what it
 * spends once (compiled code, the young generation's pages touched for the first time, Go's runtime growing) is
 * then not counted as if each idle connection cost it.
 */
async function idleMemory(server: Server, config: ConnectConfig) {
  // Eight at a time: the servers let at most 10 connections log in at once (MAX_STARTUPS, sshd's MaxStartups).
  for (let i = 0; i < WARM_UP_LOGINS; i += 8) {
    await Promise.all(Array.from({ length: 8 }, async () => close(await connectPatiently({ port: server.port, ...config }))));
  }
  await sleep(500);
  const before = memoryBytes(server.pid);
  const clients: ssh2.Client[] = [];
  for (let i = 0; i < IDLE_SESSIONS; i += 8) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(8, IDLE_SESSIONS - i) }, () =>
      connectPatiently({ port: server.port, ...config }))));
  }
  await sleep(1000);
  const perSession = (memoryBytes(server.pid) - before) / IDLE_SESSIONS;
  await Promise.all(clients.map(close));
  await sleep(500);
  return { perSession };
}

/**
 * Where a step's main thread spent its time (from the largest `--cpu-prof` profile in `dir`): the functions with
 * the most time of their own, in milliseconds per session, each with the nearest code that is not Node.js's own
 * below it on the stack (ssh2, tsx, or the step and shared/), which tells whose work it is.
 */
function printProfile(name: string, dir: string, sessions: number) {
  const [file] = readdirSync(dir).map((each) => join(dir, each)).sort((a, b) => statSync(b).size - statSync(a).size);
  if (!file) return progress(`${name}: no profile was written in ${dir}`);
  type Node = { id: number; callFrame: { functionName: string; url: string }; children?: number[] };
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const msByNode = new Map<number, number>();
  profile.samples.forEach((id, i) => msByNode.set(id, (msByNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const parents = new Map<number, Node>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node);
  const fileOf = (url: string) => url.replace(/^.*node_modules\//, '').replace(`file://${root}`, '');
  /** The nearest frame, from this one down the stack, in a file that is not part of Node.js. */
  const owner = (node: Node): string => {
    for (let at: Node | undefined = node; at; at = parents.get(at.id)) {
      const { url } = at.callFrame;
      if (url && !url.startsWith('node:')) return fileOf(url);
    }
    return '';
  };
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const ms = msByNode.get(node.id) ?? 0;
    const fn = node.callFrame.functionName || '(anonymous)';
    if (ms === 0 || fn === '(idle)') continue;
    const from = owner(node);
    const key = from ? `${fn}, from ${from}` : fn;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
  }
  const busy = [...byFunction.values()].reduce((a, b) => a + b, 0);
  console.log(`\n${name}: main thread busy ${(busy / sessions).toFixed(2)} ms per session (${sessions} sessions, ` +
    `start-up included; ${file}). Most time of their own, ms per session:`);
  for (const [key, ms] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`${(ms / sessions).toFixed(3).padStart(8)}  ${key}`);
  }
}

interface Subject {
  name: string;
  /** Starts the server; a step is given `node` options (for --profile). */
  start: (nodeOptions?: string[]) => Promise<Server>;
  config: ConnectConfig;
  /** Measure its memory with IDLE_SESSIONS idle sessions (one subject for each server is enough). */
  memory: boolean;
}

/** Builds the Go server into the bench's folder; or says why it cannot, and how to get what is missing. */
function buildGoServer(): { path: string } | { why: string } {
  const how = 'Debian: apt-get install -y golang-go golang-golang-x-crypto-dev';
  if (spawnSync('go', ['version']).status !== 0) return { why: `no Go (${how})` };
  const path = join(dir, 'go-server');
  const built = spawnSync('go', ['build', '-o', path, join(root, 'test', 'bench', 'go-server.go')], {
    encoding: 'utf8',
    env: { ...process.env, GO111MODULE: 'off', GOPATH: process.env.GOPATH ?? '/usr/share/gocode', GOCACHE: join(dir, 'go-cache') },
  });
  return built.status === 0 ? { path } : { why: `it did not build (${built.stderr.trim().split('\n')[0]}; ${how})` };
}

export type Servers = Record<string, { algorithms: string; c1: Rate; c8: Rate; idleBytesPerSession?: number }>;

/** Measures every server; resolves with the figures so far, and sshd (for throughput.ts), if it started. */
export async function measureSessions(args: Args): Promise<{
  results: Record<string, any>; servers: Servers; startupMs: Record<string, number>; sshd: Sshd | undefined;
}> {
  const subjects: Subject[] = [
    { name: 'step 03, password', start: (options) => startStep('03-trivial-channel.ts', env, options), config: alice.password, memory: true },
    {
      name: 'step 03, password, Nagle on',
      start: (options = []) => startStep('03-trivial-channel.ts', env, ['--import', './test/bench/nagle-on.ts', ...options]),
      config: alice.password,
      memory: false,
    },
    {
      name: 'step 03, password, RSA host key',
      start: (options) => startStep('03-trivial-channel.ts', env, options),
      config: { ...alice.password, algorithms: { serverHostKey: ['rsa-sha2-512'] } },
      memory: false,
    },
    {
      // Every step offers the post-quantum hybrid first, and the load generator (ssh2, patched) takes it: this is
      // the same step with the exchange of before, for the cost of the hybrid.
      name: 'step 03, password, Curve25519 key exchange',
      start: (options) => startStep('03-trivial-channel.ts', env, options),
      config: { ...alice.password, algorithms: { kex: ['curve25519-sha256'] } },
      memory: false,
    },
    {
      name: 'step 03, scrypt password',
      start: (options) => startStep('03-trivial-channel.ts', { ...env, SSH_PASSWORDS: hashedPasswords }, options),
      config: alice.password,
      memory: false,
    },
    { name: 'step 09, public key', start: (options) => startStep('09-public-key-auth.ts', env, options), config: alice.key, memory: true },
  ];

  const sshdPath = args.attacks ? { why: 'not needed for --attacks' } : findSshd();
  let sshd: Awaited<ReturnType<typeof startSshd>> | undefined;
  if ('why' in sshdPath) {
    progress(`sshd left out: ${sshdPath.why}; measuring the steps alone`);
  } else {
    sshd = await startSshd(sshdPath.path, dir, userPublicKey).catch((err: Error) => {
      progress(`sshd left out: ${err.message}; measuring the steps alone`);
      return undefined;
    });
  }
  if (sshd) {
    const server = { port: sshd.port, pid: sshd.pid, stop: async () => {} };
    subjects.push(
      { name: 'sshd, password', start: async () => server, config: { username: SSHD_USER, password: sshd.password }, memory: false },
      { name: 'sshd, public key', start: async () => server, config: { username: SSHD_USER, privateKey: userKey }, memory: true },
    );
  }

  // Go's golang.org/x/crypto/ssh (under gliderlabs/ssh, wish, soft-serve), doing what steps 03 and 09 do: built from
  // test/bench/go-server.go when Go and x/crypto are installed (Debian's packages work offline, in GOPATH mode).
  const goServer = buildGoServer();
  if ('why' in goServer) {
    progress(`Go left out: ${goServer.why}`);
  } else {
    const startGo = () => startGoServer(goServer.path);
    const curve25519 = { kex: ['curve25519-sha256' as const] };
    subjects.push(
      { name: 'go, password', start: startGo, config: { ...alice.password, algorithms: curve25519 }, memory: false },
      { name: 'go, public key', start: startGo, config: { ...alice.key, algorithms: curve25519 }, memory: true },
      {
        name: 'step 09, public key, Curve25519 key exchange',
        start: (options) => startStep('09-public-key-auth.ts', env, options),
        config: { ...alice.key, algorithms: curve25519 },
        memory: false,
      },
    );
  }

  const results: Record<string, any> = {
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      // Whether ssh2's C++ binding (its AES-GCM and ChaCha20-Poly1305) loads in this Node: without it they cost more.
      ssh2Binding: !bindingProblem(root),
      sshd: sshd?.version ?? null,
      go: 'why' in goServer ? null : spawnSync('go', ['version'], { encoding: 'utf8' }).stdout.trim(),
      sshdPasswordHash: sshd?.passwordHash ?? null,
    },
    runs: RUNS,
    secondsPerRate: SECONDS,
  };
  const servers: Servers = {};
  results.servers = servers;

  // Start-up on this machine's Node, and on Node 24 and 26 where .ci/today has installed them. The target is for the
  // current LTS: Node 26 (Active LTS from October 2026).
  const startupRuntimes: [string, string | undefined][] = [[`Node ${process.versions.node} (this machine's)`, undefined]];
  for (const major of [24, 26]) {
    const dir = join(todayNodes, `node${major}`, 'bin');
    if (existsSync(join(dir, 'node'))) startupRuntimes.push([`Node ${major}`, dir]);
    else progress(`start-up on Node ${major} left out: not installed (sudo bash .ci/today installs it)`);
  }
  const startupMs: Record<string, number> = {};
  results.startupMs = startupMs;
  for (const [name, dir] of args.attacks ? [] : startupRuntimes) {
    progress(`start-up time of \`npx tsx steps/03-trivial-channel.ts\`, ${name}`);
    const startups: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const step = await startStep('03-trivial-channel.ts', env, [], dir);
      startups.push(step.startupMs);
      await step.stop();
    }
    startupMs[name] = median(startups);
  }

  // --only "a|b" measures the servers whose names hold a or b.
  const wanted = (name: string) => (args.only ?? '').split('|').some((text) => name.includes(text));
  for (const subject of subjects.filter(({ name }) => !args.attacks && wanted(name))) {
    const profileDir = args.profile && join(resolvePath(args.profile), subject.name.replace(/\W+/g, '-'));
    const server = await subject.start(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []);
    const sessionsBefore = sessionsDone;
    const config = { port: server.port, ...subject.config };
    const algorithms = await negotiated(config);
    progress(`${subject.name}: session rate, one client at a time`);
    const c1 = await repeat(() => sessionRate(server, subject.config, 1));
    progress(`${subject.name}: session rate, eight clients at a time`);
    const c8 = await repeat(() => sessionRate(server, subject.config, 8));
    await server.stop();
    if (profileDir && !subject.name.startsWith('sshd')) printProfile(subject.name, profileDir, sessionsDone - sessionsBefore);
    let idleBytesPerSession: number | undefined;
    if (subject.memory) {
      progress(`${subject.name}: memory with ${IDLE_SESSIONS} idle sessions`);
      // A step starts afresh for each run: a heap that has grown once does not give its memory back to the system.
      idleBytesPerSession = (await repeat(async () => {
        const fresh = await subject.start();
        const measured = await idleMemory(fresh, subject.config);
        await fresh.stop();
        return measured;
      })).perSession;
    }
    servers[subject.name] = { algorithms, c1, c8, idleBytesPerSession };
  }
  return { results, servers, startupMs, sshd };
}
