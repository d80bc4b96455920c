// What every part of `npm run bench` shares (test/bench/bench.ts reads the options and runs the parts): starting the
// servers (a step as a reader starts it, and the Go server), driving the load generator at them, reading what they
// cost from /proc, saying what the bench is doing, and failing it, rather than waiting on, when a server stops
// answering; and the bench's folder, keys and users, which setUp() makes once the options are read.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import { hashPassword } from '../../shared/login/passwords.ts';
import { processTree, root, temporaryDir } from '../helpers.ts';
import { close, connect, lanes, SESSION_TIMEOUT_MS } from './load.ts';

/** Runs of each figure, whose median is reported (`--runs`), and seconds of each session-rate run (`--seconds`). */
export let RUNS: number;
export let SECONDS: number;
/** The load processes for c=8 (`--load N`): the server, not the client, should be what limits the rate. */
export let LOAD_PROCESSES: number;

/** Sets RUNS, SECONDS and LOAD_PROCESSES, as bench.ts read and checked them. */
export function configure(runs: number, seconds: number, loadProcesses: number): void {
  RUNS = runs;
  SECONDS = seconds;
  LOAD_PROCESSES = loadProcesses;
}

/** What the parts read of the options (bench.ts reads them all). */
export interface Args { only?: string; attacks?: boolean; profile?: string; json?: string }

export const IDLE_SESSIONS = 1000;

export interface Server { port: number; pid: number; stop: () => Promise<void>; cpu?: () => number }

// Each step runs in a process group of its own (npx, tsx and node), so that all three are stopped at the end.
export const started: ChildProcess[] = [];
const stopStep = (child: ChildProcess) => {
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    // Already gone.
  }
};
/** The load processes (load-process.ts): ended with the bench, whatever ends it. */
const loadProcesses: ChildProcess[] = [];
process.on('exit', () => {
  started.forEach(stopStep);
  for (const child of loadProcesses) if (child.exitCode === null) child.kill('SIGKILL');
});
// Ctrl-C ends the bench through 'exit', so that the steps, sshd and its user are removed then too.
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

/** Starts a step as a reader does (`npx tsx steps/FILE`), on a free port; resolves once it is listening. */
export async function startStep(file: string, env: Record<string, string>, nodeOptions: string[] = [], nodeDir?: string, tree = root) {
  const begun = performance.now();
  // A step's file name, or a path from the project's root (test/bench/ssh2-server.ts)
  const path = file.includes('/') ? file : join('steps', file);
  // BENCH_STEP_IMPORT: a module loaded before every step the bench starts (spy-loop.ts, to see where a loop stood still).
  const spy = process.env.BENCH_STEP_IMPORT ? ['--import', process.env.BENCH_STEP_IMPORT] : [];
  const child = spawn('npx', ['tsx', ...spy, ...nodeOptions, path, '--port', '0'], {
    cwd: tree,
    // The load generator is one address that opens 8 connections at a time, and 1000 idle ones: the limits meant
    // for many clients from many addresses stay out of its way, as sshd's defaults do.
    env: {
      ...process.env, AUTH_PENALTY_MAX: '0', SOURCE_PENALTY_MAX: '0', PER_SOURCE_MAX_STARTUPS: '10',
      MAX_CONNECTIONS: String(2 * IDLE_SESSIONS), ...env,
      // Another Node first on the PATH: npx, tsx and the step all run on it.
      ...(nodeDir ? { PATH: `${nodeDir}:${process.env.PATH}` } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
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
  const startupMs = performance.now() - begun;
  // What it logs for each connection is not kept (but is read, or the pipe would fill up and stop it).
  output = '';
  child.stdout!.removeAllListeners('data').resume();
  // npx starts tsx, and tsx starts node (which starts esbuild): the server is the last one that runs the step.
  const pid = processTree(child.pid!).filter((each) => commandLine(each).includes(path)).at(-1)!;
  const stop = async () => {
    // The server alone: tsx would pass a second SIGTERM on to it, which would end it before it writes its profile.
    process.kill(pid, 'SIGTERM');
    // Until the server has exited (and written its profile, if it makes one).
    while (/^\S+ \(.*\) [^Z]/.test(readFileSafe(`/proc/${pid}/stat`))) await sleep(20);
  };
  return { port, pid, startupMs, stop, group: child.pid!, output: child.stdout! };
}

/** The file's text, or '' if it is not there (a process that has ended). */
function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function commandLine(pid: number): string {
  return readFileSafe(`/proc/${pid}/cmdline`).replaceAll('\0', ' ');
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout);

/** CPU time (user + system) of the process and of its children that have ended, in milliseconds (/proc). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / CLOCK_TICKS;
}

/**
 * Memory of the process and every process below it, in bytes: the sum of their proportional set sizes (a page
 * shared by n processes counts 1/n for each), so that sshd's processes per connection are not counted n times.
 */
export function memoryBytes(pid: number): number {
  let total = 0;
  for (const each of processTree(pid)) {
    try {
      total += Number(/^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${each}/smaps_rollup`, 'utf8'))![1]) * 1024;
    } catch {
      // The process ended while we looked.
    }
  }
  return total;
}

/** Private memory (pages no other process shares, clean or dirty) of the process and every process below it, in bytes. */
export function privateBytes(pid: number): number {
  let total = 0;
  for (const each of processTree(pid)) {
    try {
      const rollup = readFileSync(`/proc/${each}/smaps_rollup`, 'utf8');
      for (const field of ['Private_Clean', 'Private_Dirty']) total += Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(rollup)![1]) * 1024;
    } catch {
      // The process ended while we looked.
    }
  }
  return total;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Ends the bench with one line and exit status 1 (the steps and load processes are stopped on the way out). */
export function fail(why: string): never {
  console.error(`bench: FAILED: ${why}`);
  process.exit(1);
}

/** connect(), tried again after a pause when the server drops a connection still logging in (sshd's MaxStartups). */
export async function connectPatiently(config: ConnectConfig): Promise<ssh2.Client> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect(config);
    } catch (err) {
      if (attempt === 5) throw err;
      await sleep(200 * attempt);
    }
  }
}

/** The key exchange, host key and cipher that the server and the load generator agree on. */
export async function negotiated(config: ConnectConfig): Promise<string> {
  const seen: string[] = [];
  await close(await connect(config, (name) => seen.push(name)));
  return seen.join(', ');
}

export let sessionsDone = 0;

interface LoadRun { seconds?: number; sessions?: number; nodeDir?: string; perSecond?: number }

/**
 * Sessions at c=1 from this process; at more, from LOAD_PROCESSES load processes (load-process.ts) at once: for
 * `seconds` (SECONDS unless given), or until `sessions` have been made, on this Node or the one in `nodeDir`. A run
 * has a deadline: a load process that has not reported by then (the server stopped answering) fails the bench.
 */
export async function runLoad(config: ConnectConfig, concurrency: number, run: LoadRun = {}) {
  const seconds = run.seconds ?? SECONDS;
  if ((concurrency === 1 || LOAD_PROCESSES <= 1) && !run.nodeDir && !run.perSecond) {
    const own = process.cpuUsage();
    const begun = performance.now();
    const { latencies, failed, timedOut } = await lanes(config, concurrency, begun + seconds * 1000, run.sessions);
    const used = process.cpuUsage(own);
    return { latencies, failed, timedOut, late: 0, elapsed: (performance.now() - begun) / 1000, loadCpuMs: (used.user + used.system) / 1000 };
  }
  const sent = { ...config, privateKey: config.privateKey && Buffer.from(config.privateKey as Buffer).toString('base64') };
  const share = (total: number, i: number) => Math.floor(total / LOAD_PROCESSES) + (i < total % LOAD_PROCESSES ? 1 : 0);
  const node = run.nodeDir ? join(run.nodeDir, 'node') : process.execPath;
  const children = Array.from({ length: LOAD_PROCESSES }, (_, i) => spawn(node,
    ['--import', 'tsx', join(root, 'test', 'bench', 'load-process.ts'), JSON.stringify({
      config: sent, seconds, lanes: share(concurrency, i), sessions: run.sessions && share(run.sessions, i),
      perSecond: run.perSecond && run.perSecond / LOAD_PROCESSES,
    })], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] }));
  loadProcesses.push(...children);
  const lines = children.map((child) => {
    const read: string[] = [];
    let text = '';
    child.stdout!.on('data', (chunk) => {
      text += chunk;
      for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n')) {
        read.push(text.slice(0, at));
        text = text.slice(at + 1);
      }
    });
    return read;
  });
  while (lines.some((read) => !read.includes('ready'))) await sleep(20);
  const begun = performance.now();
  for (const child of children) child.stdin!.write('go\n');
  const deadline = (run.perSecond ? (run.sessions! / run.perSecond) : seconds) * 1000 + SESSION_TIMEOUT_MS + 15_000;
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    Promise.all(children.map((child) => child.exitCode === null ? once(child, 'exit') : undefined)).then(() => false),
    new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), deadline))),
  ]);
  clearTimeout(timer);
  if (late) {
    for (const child of children) child.kill('SIGKILL');
    fail(`the load did not end within ${(deadline / 1000).toFixed(0)} s of its start: a server stopped answering`);
  }
  const reports = lines.map((read) => {
    try {
      return JSON.parse(read.at(-1)!) as { latencies: number[]; failed: number; timedOut: number; late: number; elapsed: number; cpuMs: number };
    } catch {
      return fail('a load process ended without its report (see what it printed above)');
    }
  });
  return {
    latencies: reports.flatMap((report) => report.latencies),
    failed: reports.reduce((sum, report) => sum + report.failed, 0),
    timedOut: reports.reduce((sum, report) => sum + report.timedOut, 0),
    late: reports.reduce((sum, report) => sum + report.late, 0),
    elapsed: Math.max((performance.now() - begun) / 1000 - 0.05, ...reports.map((report) => report.elapsed)),
    loadCpuMs: reports.reduce((sum, report) => sum + report.cpuMs, 0),
  };
}

/** How busy a process must be to count as the limit of a rate, in % of one core. */
export const BUSY = 90;

/** Which side limited a session rate: the server (one process, or sshd's many), the load generator, or neither. */
export function limitedBy(rate: { serverCpuPercent: number; loadGeneratorCpuPercent: number }): string {
  const load = rate.loadGeneratorCpuPercent / LOAD_PROCESSES;
  if (load >= BUSY && load >= rate.serverCpuPercent) return 'the load';
  if (rate.serverCpuPercent >= BUSY) return 'the server';
  if (rate.serverCpuPercent + rate.loadGeneratorCpuPercent >= (BUSY * cpus().length)) return 'the machine';
  return 'neither';
}

export async function sessionRate(server: Server, config: ConnectConfig, concurrency: number) {
  const cpu = server.cpu ?? (() => cpuMs(server.pid));
  const cpuBefore = cpu();
  const { latencies, failed, timedOut, elapsed, loadCpuMs } = await runLoad({ port: server.port, ...config }, concurrency);
  if (timedOut) fail(`${timedOut} of ${latencies.length + failed} sessions at c=${concurrency} took more than ${SESSION_TIMEOUT_MS / 1000} s`);
  sessionsDone += latencies.length;
  await sleep(200); // sshd's processes for the last sessions must end, so that their CPU time is counted
  const serverCpuMs = cpu() - cpuBefore;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / elapsed,
    p50: latencies[Math.floor(latencies.length * 0.5)]!,
    p99: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!,
    cpuPerSession: serverCpuMs / latencies.length,
    failed,
    /** How much of one core the server and the load generator used: the busier is what limits the rate. */
    serverCpuPercent: (serverCpuMs / (elapsed * 1000)) * 100,
    loadGeneratorCpuPercent: (loadCpuMs / (elapsed * 1000)) * 100,
  };
}

export type Rate = Awaited<ReturnType<typeof sessionRate>>;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function repeat<T extends Record<string, number>>(measure: () => Promise<T>): Promise<T> {
  const results: T[] = [];
  for (let run = 0; run < RUNS; run++) results.push(await measure());
  return Object.fromEntries(Object.keys(results[0]!).map((key) => [key, median(results.map((r) => r[key]!))])) as T;
}

const benchStarted = performance.now();
/** What the bench is measuring now, and the deadline it has: past it, the bench fails instead of waiting on. */
let watchdog: NodeJS.Timeout | undefined;
export function progress(what: string, allowedSeconds = 600) {
  process.stderr.write(`bench: ${((performance.now() - benchStarted) / 1000).toFixed(0).padStart(4)} s  ${what}\n`);
  clearTimeout(watchdog);
  watchdog = setTimeout(() => fail(`"${what}" did not end within ${allowedSeconds} s: a server stopped answering`),
    allowedSeconds * 1000).unref();
}

// --- Set-up --------------------------------------------------------------------------------------------------

/** The bench's folder: alice's key pair, users' public keys, a password file with a hash, the steps' host keys. */
export let dir: string;
export let keysDir: string;
export let userKey: Buffer;
export let userPublicKey: string;
export let hashedPasswords: string;
/** What every step is started with: the host keys and the users' public keys in the bench's folder. */
export let env: { HOST_KEYS_DIR: string; SSH_AUTHORIZED_KEYS_DIR: string };
/** alice's logins, by password and by key. */
export let alice: { password: { username: string; password: string }; key: { username: string; privateKey: Buffer } };

/** Makes the bench's folder and what is in it, and the steps' host keys (by starting step 03 once). */
export async function setUp(): Promise<void> {
  dir = temporaryDir();
  keysDir = join(dir, 'authorized_keys');
  mkdirSync(keysDir);
  spawnSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', join(dir, 'id_ed25519')]);
  userKey = readFileSync(join(dir, 'id_ed25519'));
  userPublicKey = readFileSync(join(dir, 'id_ed25519.pub'), 'utf8');
  writeFileSync(keysDir + '/alice', userPublicKey);
  hashedPasswords = join(dir, 'ssh-passwords');
  writeFileSync(hashedPasswords, `alice:${await hashPassword('wonderland')}\n`);
  env = { HOST_KEYS_DIR: join(dir, 'host-keys'), SSH_AUTHORIZED_KEYS_DIR: keysDir };
  await (await startStep('03-trivial-channel.ts', env)).stop(); // makes the host keys
  alice = { password: { username: 'alice', password: 'wonderland' }, key: { username: 'alice', privateKey: userKey } };
}

export const CURRENT_LTS = 'Node 26';
export const todayNodes = join(process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps', 'runtimes', 'node_modules');

/** Starts the Go server built at `path`, with the steps' host key and alice's key; resolves once it listens. */
export async function startGoServer(path: string): Promise<Server> {
  const child = spawn(path, [join(env.HOST_KEYS_DIR, 'ssh_host_ed25519_key'), join(keysDir, 'alice')],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  const [chunk] = await once(child.stdout!, 'data') as [Buffer];
  child.stdout!.resume();
  const port = Number(/listening on \S+:(\d+)/.exec(String(chunk))![1]);
  return { port, pid: child.pid!, stop: async () => void child.kill('SIGKILL') };
}
