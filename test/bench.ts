// `npm run bench`: what the steps cost, measured on this machine. Not a test: it asserts nothing, it measures.
//
// Starts the steps itself (03 with a password, 09 with a key, 08 running cat), drives them with the ssh2 client
// from this process, repeats each figure (median of --runs, default 3) and prints a table, plus JSON with --json.
// Still to come (issue 6): the same figures for OpenSSH's sshd in the same run, and the ratios step/sshd.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import { root, temporaryDir } from './helpers.ts';

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '4' }, json: { type: 'string' } },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);

interface Server { name: string; port: number; pid: number; process: ChildProcess }

const started: ChildProcess[] = [];
process.on('exit', () => started.forEach((child) => child.kill()));

async function startStep(name: string, file: string, env: Record<string, string>): Promise<Server & { startupMs: number }> {
  const begun = performance.now();
  const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'steps', file), '--port', '0'], {
    cwd: root,
    env: { ...process.env, AUTH_PENALTY_MAX: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(child);
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      output += chunk;
      const match = /listening on \S+:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)));
  });
  // The tsx command starts node as a child of its own: the server is that child.
  const pid = Number(spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0]);
  return { name, port, pid, process: child, startupMs: performance.now() - begun };
}

/** CPU time the process has used, in milliseconds (user + system, from /proc). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout);
}

function rssBytes(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

function connect(config: ConnectConfig): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    client.once('ready', () => resolve(client)).once('error', reject);
    client.connect({ host: '127.0.0.1', ...config });
    // The load generator turns Nagle's algorithm off too, or its own small writes would wait for ACKs.
    client.setNoDelay(true);
  });
}

/** One whole session: connect, key exchange, log in, open a session, shell, read what it says, close. */
async function session(config: ConnectConfig): Promise<number> {
  const started = performance.now();
  const client = await connect(config);
  await new Promise<void>((resolve, reject) => client.shell(false, (err, channel) => {
    if (err) return reject(err);
    channel.resume();
    channel.once('close', () => resolve());
    // Step 03 closes the channel by itself; step 09's echo protocol closes it when the input ends.
    channel.end();
  }));
  await new Promise<void>((resolve) => {
    client.once('close', () => resolve());
    client.end();
  });
  return performance.now() - started;
}

async function sessionRate(server: Server, config: ConnectConfig, concurrency: number) {
  const latencies: number[] = [];
  const cpuBefore = cpuMs(server.pid);
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) latencies.push(await session({ port: server.port, ...config }));
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / elapsed,
    p50: latencies[Math.floor(latencies.length * 0.5)]!,
    p99: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!,
    cpuPerSession: (cpuMs(server.pid) - cpuBefore) / latencies.length,
  };
}

async function idleMemory(server: Server, config: ConnectConfig, count: number) {
  const before = rssBytes(server.pid);
  const clients: ssh2.Client[] = [];
  // Eight at a time: the step lets at most MAX_STARTUPS connections log in at once.
  for (let i = 0; i < count; i += 8) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(8, count - i) }, () =>
      connect({ port: server.port, ...config }))));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const perSession = (rssBytes(server.pid) - before) / count;
  await Promise.all(clients.map((client) => new Promise<void>((resolve) => {
    client.once('close', () => resolve());
    client.end();
  })));
  return perSession;
}

async function throughput(server: Server, config: ConnectConfig, bytes: number) {
  const client = await connect({ port: server.port, ...config });
  const started = performance.now();
  await new Promise<void>((resolve, reject) => client.exec('cat', (err, channel) => {
    if (err) return reject(err);
    let received = 0;
    channel.on('data', (chunk: Buffer) => (received += chunk.length));
    channel.once('close', () => (received === bytes ? resolve() : reject(new Error(`got ${received} of ${bytes}`))));
    const block = randomBytes(1024 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += block.length;
        if (!channel.write(block)) return channel.once('drain', pump);
      }
      channel.end();
    };
    pump();
  }));
  client.end();
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function repeat<T extends Record<string, number>>(measure: () => Promise<T>): Promise<T> {
  const results: T[] = [];
  for (let run = 0; run < RUNS; run++) results.push(await measure());
  return Object.fromEntries(Object.keys(results[0]!).map((key) => [key, median(results.map((r) => r[key]!))])) as T;
}

// ---------------------------------------------------------------------------------------------------------------

const dir = temporaryDir();
const keysDir = join(dir, 'authorized_keys');
mkdirSync(keysDir);
spawnSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', join(dir, 'id_ed25519')]);
writeFileSync(join(keysDir, 'alice'), readFileSync(join(dir, 'id_ed25519.pub')));
const env = { HOST_KEYS_DIR: join(dir, 'host-keys'), SSH_AUTHORIZED_KEYS_DIR: keysDir };
await startStep('warm-up', '03-trivial-channel.ts', env).then((s) => s.process.kill()); // makes the host keys

const password: ConnectConfig = { username: 'alice', password: 'wonderland' };
const publicKey: ConnectConfig = { username: 'alice', privateKey: readFileSync(join(dir, 'id_ed25519')) };

const progress = (what: string) => process.stderr.write(`bench: ${what}\n`);
const rows: Record<string, string | number>[] = [];
const results: Record<string, unknown> = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
};

progress('start-up time');
const startups: number[] = [];
for (let run = 0; run < RUNS; run++) {
  const step = await startStep('startup', '03-trivial-channel.ts', env);
  startups.push(step.startupMs);
  step.process.kill();
}
results.startupMs = median(startups);

for (const [name, file, config] of [
  ['step 03, password', '03-trivial-channel.ts', password],
  ['step 09, public key', '09-public-key-auth.ts', publicKey],
] as const) {
  const server = await startStep(name, file, env);
  progress(`${name}: session rate, one client at a time`);
  const c1 = await repeat(() => sessionRate(server, config, 1));
  progress(`${name}: session rate, eight clients at a time`);
  const c8 = await repeat(() => sessionRate(server, config, 8));
  server.process.kill();
  progress(`${name}: memory of 1000 idle sessions`);
  // A fresh server for each run: a heap that has grown once does not give its memory back to the system.
  const memory = await repeat(async () => {
    const fresh = await startStep(name, file, env);
    const perSession = await idleMemory(fresh, config, 1000);
    fresh.process.kill();
    return { perSession };
  });
  results[name] = { c1, c8, idleBytesPerSession: memory.perSession };
  rows.push({
    server: name,
    'sessions/s c=1': c1.perSecond.toFixed(1),
    'p50 ms c=1': c1.p50.toFixed(1),
    'p99 ms c=1': c1.p99.toFixed(1),
    'sessions/s c=8': c8.perSecond.toFixed(1),
    'p50 ms c=8': c8.p50.toFixed(1),
    'CPU ms/session': c8.cpuPerSession.toFixed(2),
    'KiB/idle session': (memory.perSession / 1024).toFixed(1),
  });
}

progress('throughput of cat');
const cat = await startStep('step 08, cat', '08-exec-requests.ts', env);
const mbPerSecond = await repeat(async () => ({ mbps: await throughput(cat, password, 256 * 1024 * 1024) }));
cat.process.kill();
results.catThroughputMBps = mbPerSecond.mbps;

console.table(rows);
console.log(`step 08 cat throughput: ${mbPerSecond.mbps.toFixed(1)} MB/s (256 MiB)`);
console.log(`start-up of step 03 (tsx to "listening on"): ${(results.startupMs as number).toFixed(0)} ms`);
console.log(`median of ${RUNS} runs, ${SECONDS} s each for session rates; machine: ${JSON.stringify(results.machine)}`);
if (args.json) writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
