// `npm run bench`: what the steps cost, side by side with OpenSSH's sshd, measured on this machine in one run.
// Not a test: it asserts nothing, it measures. Options:
//   --runs N        runs of each figure, whose median is reported (default 3)
//   --seconds S     length of each session-rate run (default 4)
//   --json FILE     where to write all the figures (default: a new file in the system's temporary folder)
//   --profile DIR   run the steps under `node --cpu-prof`, keep the profiles in DIR, print where time goes
//   --only TEXT     only the figures of the servers whose names hold TEXT, such as "step 09" or "go|Curve25519"
//   --attacks       only the figures under attack: a step's memory, and a login's latency, while it is attacked
//   --load N        processes of the load generator at eight clients at a time (default: a core less than the
//                   machine has, from 1 to 4, so that one core at least is left to the server)
//   --soak N        only a soak: N sessions of step 03 at eight at a time, on this machine's Node and on the
//                   current LTS (where .ci/today installed it); fails if any session times out or the step stops
//                   answering
//   --versus-go     only step 03 against Go 1.27's x/crypto/ssh (built with the Go of .ci/today's Debian testing
//                   root), with mlkem768x25519-sha256 and curve25519-sha256, at paced rates and at saturation, driven
//                   by ssh2's client and by Go's, on Node 26 (with node_modules installed under it) and this Node;
//                   beside them, the same on ssh2 alone (test/bench-ssh2-server.ts); where each one's CPU goes
//                   (by perf, when it is there); start-up, and that of the tools alone (test/bench-tools-alone.ts)
//   --startup       only step 03's start-up, split: npx tsx, the tools alone, and node --import tsx (this Node, Node 26)
//
// Starts the servers itself: step 03 (password: from the demo file, from an scrypt-hashed file, and with Nagle's
// algorithm left on by test/nagle-on.ts), step 09 (public key), step 08 (exec cat), and sshd with a config, host
// key and user of its own (test/sshd.ts; that part needs root and Debian's openssh-server, and is left out with a
// reason when either is missing). Every server is driven by the same load generator: the ssh2 client, from this
// process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { createConnection, createServer } from 'node:net';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import { hashPassword } from '../shared/login/passwords.ts';
import { toBase32 } from '../shared/login/totp.ts';
import { freePort, root, temporaryDir } from './helpers.ts';
import { close, connect, lanes, session, SESSION_TIMEOUT_MS } from './bench-session.ts';
import { buildWithTodaysGo, projectUnder } from './bench-today.ts';
import { escapeFlood, exec, flood, peakDuring, ptyStorm, remoteForwardBurst, residentMiB, sendWithoutReading, shell, slotHolder } from './hostile.ts';
import { findSshd, processTree, SSHD_USER, startSshd } from './sshd.ts';
import { cpuByKind, perfMissing } from './bench-perf.ts';

function options() {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '4' },
        json: { type: 'string' },
        profile: { type: 'string' },
        only: { type: 'string' },
        attacks: { type: 'boolean' },
        load: { type: 'string', default: String(Math.min(4, Math.max(1, cpus().length - 1))) },
        soak: { type: 'string' },
        startup: { type: 'boolean' },
        'versus-go': { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    console.error(`bench: ${(err as Error).message} (options: --runs N --seconds S --json FILE --profile DIR --only TEXT --attacks --load N --soak N --versus-go --startup)`);
    process.exit(1);
  }
}
const args = options();
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
if (!Number.isInteger(RUNS) || RUNS < 1 || !(SECONDS > 0)) {
  console.error('bench: --runs takes a whole number from 1, and --seconds a number above 0');
  process.exit(1);
}
const IDLE_SESSIONS = 1000;
const WARM_UP_LOGINS = 200;
const CAT_BYTES = 256 * 1024 * 1024;
/** The size of the repository that git pushes and clones (step 19). */
const GIT_BYTES = 50 * 1024 * 1024;

interface Server { port: number; pid: number; stop: () => Promise<void>; cpu?: () => number }

// Each step runs in a process group of its own (npx, tsx and node), so that all three are stopped at the end.
const started: ChildProcess[] = [];
const stopStep = (child: ChildProcess) => {
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    // Already gone.
  }
};
/** The load processes (test/bench-load.ts): ended with the bench, whatever ends it. */
const loadProcesses: ChildProcess[] = [];
process.on('exit', () => {
  started.forEach(stopStep);
  for (const child of loadProcesses) if (child.exitCode === null) child.kill('SIGKILL');
});
// Ctrl-C ends the bench through 'exit', so that the steps, sshd and its user are removed then too.
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

/** Starts a step as a reader does (`npx tsx steps/FILE`), on a free port; resolves once it is listening. */
async function startStep(file: string, env: Record<string, string>, nodeOptions: string[] = [], nodeDir?: string, tree = root) {
  const begun = performance.now();
  // A step's file name, or a path from the project's root (test/bench-ssh2-server.ts)
  const path = file.includes('/') ? file : join('steps', file);
  const child = spawn('npx', ['tsx', ...nodeOptions, path, '--port', '0'], {
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
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / CLOCK_TICKS;
}

/**
 * Memory of the process and every process below it, in bytes: the sum of their proportional set sizes (a page
 * shared by n processes counts 1/n for each), so that sshd's processes per connection are not counted n times.
 */
function memoryBytes(pid: number): number {
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
function privateBytes(pid: number): number {
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Ends the bench with one line and exit status 1 (the steps and load processes are stopped on the way out). */
function fail(why: string): never {
  console.error(`bench: FAILED: ${why}`);
  process.exit(1);
}

/** connect(), tried again after a pause when the server drops a connection still logging in (sshd's MaxStartups). */
async function connectPatiently(config: ConnectConfig): Promise<ssh2.Client> {
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
async function negotiated(config: ConnectConfig): Promise<string> {
  const seen: string[] = [];
  await close(await connect(config, (name) => seen.push(name)));
  return seen.join(', ');
}

let sessionsDone = 0;
/** The load processes for c=8 (`--load N`): the server, not the client, should be what limits the rate. */
const LOAD_PROCESSES = Number(args.load);
if (!Number.isInteger(LOAD_PROCESSES) || LOAD_PROCESSES < 1) {
  console.error('bench: --load takes a whole number from 1');
  process.exit(1);
}

interface LoadRun { seconds?: number; sessions?: number; nodeDir?: string; perSecond?: number }

/**
 * Sessions at c=1 from this process; at more, from LOAD_PROCESSES load processes (test/bench-load.ts) at once: for
 * `seconds` (SECONDS unless given), or until `sessions` have been made, on this Node or the one in `nodeDir`. A run
 * has a deadline: a load process that has not reported by then (the server stopped answering) fails the bench.
 */
async function runLoad(config: ConnectConfig, concurrency: number, run: LoadRun = {}) {
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
    ['--import', 'tsx', join(root, 'test', 'bench-load.ts'), JSON.stringify({
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
const BUSY = 90;

/** Which side limited a session rate: the server (one process, or sshd's many), the load generator, or neither. */
function limitedBy(rate: { serverCpuPercent: number; loadGeneratorCpuPercent: number }): string {
  const load = rate.loadGeneratorCpuPercent / LOAD_PROCESSES;
  if (load >= BUSY && load >= rate.serverCpuPercent) return 'the load';
  if (rate.serverCpuPercent >= BUSY) return 'the server';
  if (rate.serverCpuPercent + rate.loadGeneratorCpuPercent >= (BUSY * cpus().length)) return 'the machine';
  return 'neither';
}

async function sessionRate(server: Server, config: ConnectConfig, concurrency: number) {
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

/** MB/s of CAT_BYTES of random data written to `command` (and read back, if the command sends it back). */
async function throughput(server: Server, config: ConnectConfig, command: string, echoes: boolean) {
  const client = await connect({ port: server.port, ...config });
  const begun = performance.now();
  await new Promise<void>((resolve, reject) => client.exec(command, (err, channel) => {
    if (err) return reject(err);
    let received = 0;
    channel.on('data', (chunk: Buffer) => (received += chunk.length));
    const expected = echoes ? CAT_BYTES : 0;
    channel.once('close', () => (received === expected ? resolve() : reject(new Error(`got ${received} of ${expected}`))));
    const block = randomBytes(1024 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < CAT_BYTES) {
        sent += block.length;
        if (!channel.write(block)) return channel.once('drain', pump);
      }
      channel.end();
    };
    pump();
  }));
  const mbps = CAT_BYTES / 1e6 / ((performance.now() - begun) / 1000);
  await close(client);
  return { mbps };
}

/** MB/s of CAT_BYTES sent by a TCP server at `sourcePort` through a direct-tcpip channel: what `ssh -L` carries. */
async function forwarded(server: Server, config: ConnectConfig, sourcePort: number) {
  const client = await connect({ port: server.port, ...config });
  const begun = performance.now();
  await new Promise<void>((resolve, reject) => client.forwardOut('127.0.0.1', 1, '127.0.0.1', sourcePort, (err, channel) => {
    if (err) return reject(err);
    let received = 0;
    channel.on('data', (chunk: Buffer) => (received += chunk.length));
    // The source has sent all: end this side too, as ssh -L does when the connection to it ends (sshd waits for it).
    channel.once('end', () => channel.end());
    channel.once('close', () => (received === CAT_BYTES ? resolve() : reject(new Error(`got ${received} of ${CAT_BYTES}`))));
  }));
  const mbps = CAT_BYTES / 1e6 / ((performance.now() - begun) / 1000);
  await close(client);
  return { mbps };
}

/** A TCP server on loopback that sends CAT_BYTES to each connection, then closes it. */
async function byteSource() {
  const block = randomBytes(1024 * 1024);
  const source = createServer((socket) => {
    let sent = 0;
    const pump = () => {
      while (sent < CAT_BYTES) {
        sent += block.length;
        if (!socket.write(block)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => source.listen(0, '127.0.0.1', resolve));
  return { port: (source.address() as { port: number }).port, close: () => source.close() };
}

/**
 * MB/s of OpenSSH's `sftp` putting a file of CAT_BYTES into `remote` (a path), then getting it back: two `sftp -b`
 * runs, each timed from start to end (the login, some tens of milliseconds, is counted in).
 */
async function sftpCopy(port: number, login: string[], env: Record<string, string>, remote: string) {
  const timed = async (batch: string) => {
    const begun = performance.now();
    const child = spawn('sftp', ['-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no',
      '-o', 'BatchMode=no', '-P', String(port), '-b', '-', ...login], { cwd: dir, env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk) => (errors += chunk));
    child.stdin.end(batch);
    const [status] = await once(child, 'close');
    if (status !== 0) throw new Error(`sftp: ${errors.trim()}`);
    return CAT_BYTES / 1e6 / ((performance.now() - begun) / 1000);
  };
  const put = await timed(`put sftp-source.bin ${remote}\n`);
  const get = await timed(`get ${remote} sftp-back.bin\nrm ${remote}\n`);
  return { put, get };
}

/**
 * MB/s of Debian's git pushing the repository in `work` (GIT_BYTES in one commit) to a new repository on the
 * server, at the path `path(n)` gives, then cloning it back: each timed from start to end, login included.
 */
let gitRuns = 0;
async function gitCopy(port: number, user: string, path: (n: number) => string, work: string) {
  const url = `ssh://${user}@127.0.0.1:${port}${path(++gitRuns)}`;
  const sshCommand = ['ssh', '-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-i', join(dir, 'id_ed25519'), '-o', 'IdentitiesOnly=yes'].join(' ');
  const timed = async (args: string[]) => {
    const begun = performance.now();
    const child = spawn('git', args, { cwd: work, env: { ...process.env, GIT_SSH_COMMAND: sshCommand }, stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk) => (errors += chunk));
    const [status] = await once(child, 'close');
    if (status !== 0) throw new Error(`git ${args[0]}: ${errors.trim()}`);
    return GIT_BYTES / 1e6 / ((performance.now() - begun) / 1000);
  };
  const push = await timed(['push', '--quiet', url, 'main']);
  const copy = join(dir, `git-clone-${gitRuns}`);
  const clone = await timed(['clone', '--quiet', '--bare', url, copy]);
  spawnSync('rm', ['-rf', copy]);
  return { push, clone };
}

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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function repeat<T extends Record<string, number>>(measure: () => Promise<T>): Promise<T> {
  const results: T[] = [];
  for (let run = 0; run < RUNS; run++) results.push(await measure());
  return Object.fromEntries(Object.keys(results[0]!).map((key) => [key, median(results.map((r) => r[key]!))])) as T;
}

const benchStarted = performance.now();
/** What the bench is measuring now, and the deadline it has: past it, the bench fails instead of waiting on. */
let watchdog: NodeJS.Timeout | undefined;
function progress(what: string, allowedSeconds = 600) {
  process.stderr.write(`bench: ${((performance.now() - benchStarted) / 1000).toFixed(0).padStart(4)} s  ${what}\n`);
  clearTimeout(watchdog);
  watchdog = setTimeout(() => fail(`"${what}" did not end within ${allowedSeconds} s: a server stopped answering`),
    allowedSeconds * 1000).unref();
}

// --- Set-up --------------------------------------------------------------------------------------------------

const dir = temporaryDir();
const keysDir = join(dir, 'authorized_keys');
mkdirSync(keysDir);
spawnSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', join(dir, 'id_ed25519')]);
const userKey = readFileSync(join(dir, 'id_ed25519'));
const userPublicKey = readFileSync(join(dir, 'id_ed25519.pub'), 'utf8');
writeFileSync(keysDir + '/alice', userPublicKey);
const hashedPasswords = join(dir, 'ssh-passwords');
writeFileSync(hashedPasswords, `alice:${await hashPassword('wonderland')}\n`);
const env = { HOST_KEYS_DIR: join(dir, 'host-keys'), SSH_AUTHORIZED_KEYS_DIR: keysDir };
await (await startStep('03-trivial-channel.ts', env)).stop(); // makes the host keys

const alice = { password: { username: 'alice', password: 'wonderland' }, key: { username: 'alice', privateKey: userKey } };

const CURRENT_LTS = 'Node 26';
const todayNodes = join(process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps', 'runtimes', 'node_modules');

// --startup: how long step 03 takes to listen, split: the reader's command (npx tsx), the tools alone (npx tsx with
// a file that does nothing), and the step under tsx's loader without npx and tsx's own process (node --import tsx),
// on this Node and on the current LTS (where .ci/today installed it). Nine starts of each, in turn; medians.
if (args.startup) {
  const lts = join(todayNodes, 'node26', 'bin');
  const runtimes: { label: string; nodeDir?: string; tree?: string }[] = [{ label: `Node ${process.versions.node}` }];
  if (existsSync(join(lts, 'node')) && !process.version.startsWith('v26.')) {
    progress(`${CURRENT_LTS}: the project with node_modules installed under it (once; then kept)`, 900);
    const made = projectUnder(lts, 'node26');
    if ('why' in made) fail(made.why);
    runtimes.push({ label: CURRENT_LTS, nodeDir: lts, tree: made.tree });
  }
  const rows: Record<string, Record<string, number>> = {};
  for (const { label, nodeDir, tree = root } of runtimes) {
    const times: Record<string, number[]> = { 'npx tsx steps/03-trivial-channel.ts': [], 'npx tsx test/bench-tools-alone.ts': [],
      'node --import tsx steps/03-trivial-channel.ts': [] };
    for (let run = 0; run < 9; run++) {
      progress(`start-up on ${label}, ${run + 1} of 9`);
      for (const file of ['03-trivial-channel.ts', 'test/bench-tools-alone.ts']) {
        const started = await startStep(file, env, [], nodeDir, tree);
        times[`npx tsx ${file.includes('/') ? file : `steps/${file}`}`]!.push(started.startupMs);
        await started.stop();
      }
      const begun = performance.now();
      const child = spawn(join(nodeDir ?? dirname(process.execPath), 'node'), ['--import', 'tsx', 'steps/03-trivial-channel.ts', '--port', '0'],
        { cwd: tree, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk) => { output += chunk; if (/listening on /.test(output)) resolve(); });
        child.once('exit', (code) => reject(new Error(`step 03 exited with ${code}`)));
      });
      times['node --import tsx steps/03-trivial-channel.ts']!.push(performance.now() - begun);
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    rows[label] = Object.fromEntries(Object.entries(times).map(([what, each]) => [`${what}, ms`, Number(median(each).toFixed(0))]));
  }
  console.table(rows);
  process.exit(0);
}

// --soak N: N sessions at c=8, the server and the load on one Node, and the step must go on answering throughout.
if (args.soak !== undefined) {
  const sessions = Number(args.soak);
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
  process.exit(0);
}

// --versus-go: step 03 against today's peer, Go 1.27's x/crypto/ssh, with both key exchanges. Each figure is a
// sample of MEASURED sessions after WARM_UP others of the same kind, at a fixed rate (an open loop, below saturation)
// or eight at a time (saturation), made by two load generators on different stacks: ssh2's client (test/bench-load.ts)
// and Go's (test/bench-go-load.go). The two servers alternate within each kind of sample.
if (args['versus-go']) {
  const WARM_UP = 500;
  const MEASURED = 1000;
  const built = buildWithTodaysGo(['bench-go-server', 'bench-go-load'], dir);
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
      const ran = spawnSync(join(dir, 'bench-go-load'), [String(server.port), kex, kind.perSecond ? 'rate' : 'c',
        String(kind.perSecond ?? kind.concurrency), String(sessions)], { encoding: 'utf8', timeout: 600_000 });
      if (ran.status !== 0) fail(`bench-go-load: ${ran.stderr.trim()}`);
      const report = JSON.parse(ran.stdout) as { sessions: number; failed: number; late: number; elapsed: number; cpuMs: number; p50: number };
      made = { ...report, loadCpuMs: report.cpuMs };
    }
    await sleep(100);
    const serverCpuMs = cpuMs(server.pid) - cpuBefore;
    return { ...made, serverCpuMs };
  };

  for (const { label, tree = root } of runtimes) {
    // ssh2's own AES-GCM and ChaCha20-Poly1305 (a C++ addon, optional): without it, ssh2 uses node:crypto.
    const binding = join(tree, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build', 'Release', 'sshcrypto.node');
    console.log(`${label}: ssh2's crypto binding ${existsSync(binding) ? 'built' : 'not built (its ciphers come from node:crypto)'}`);
  }
  for (const { label, nodeDir, tree } of runtimes) for (const kex of ['mlkem768x25519-sha256', 'curve25519-sha256']) {
    progress(`versus Go: ${label}, ${kex}: starting step 03 and Go`);
    const step = await startStep('03-trivial-channel.ts', env, [], nodeDir, tree);
    const alone = await startStep('test/bench-ssh2-server.ts', env, [], nodeDir, tree);
    const go = await startGoServer(join(dir, 'bench-go-server'));
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
        : name === 'ssh2 alone' ? await startStep('test/bench-ssh2-server.ts', env, [], nodeDir, tree)
          : await startGoServer(join(dir, 'bench-go-server'));
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
      const nothing = await startStep('test/bench-tools-alone.ts', env, [], runtimes[0].nodeDir, runtimes[0].tree);
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
  const file = args.json ?? join(tmpdir(), `conch-steps-bench-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(versusGo, null, 2));
  console.log(`all figures: ${file}`);
  process.exit(0);
}

interface Subject {
  name: string;
  /** Starts the server; a step is given `node` options (for --profile). */
  start: (nodeOptions?: string[]) => Promise<Server>;
  config: ConnectConfig;
  /** Measure its memory with IDLE_SESSIONS idle sessions (one subject for each server is enough). */
  memory: boolean;
}

const subjects: Subject[] = [
  { name: 'step 03, password', start: (options) => startStep('03-trivial-channel.ts', env, options), config: alice.password, memory: true },
  {
    name: 'step 03, password, Nagle on',
    start: (options = []) => startStep('03-trivial-channel.ts', env, ['--import', './test/nagle-on.ts', ...options]),
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
// test/bench-go-server.go when Go and x/crypto are installed (Debian's packages work offline, in GOPATH mode).
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

/** Starts the Go server built at `path`, with the steps' host key and alice's key; resolves once it listens. */
async function startGoServer(path: string): Promise<Server> {
  const child = spawn(path, [join(env.HOST_KEYS_DIR, 'ssh_host_ed25519_key'), join(keysDir, 'alice')],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  const [chunk] = await once(child.stdout!, 'data') as [Buffer];
  child.stdout!.resume();
  const port = Number(/listening on \S+:(\d+)/.exec(String(chunk))![1]);
  return { port, pid: child.pid!, stop: async () => void child.kill('SIGKILL') };
}

/** Builds the Go server into the bench's folder; or says why it cannot, and how to get what is missing. */
function buildGoServer(): { path: string } | { why: string } {
  const how = 'Debian: apt-get install -y golang-go golang-golang-x-crypto-dev';
  if (spawnSync('go', ['version']).status !== 0) return { why: `no Go (${how})` };
  const path = join(dir, 'bench-go-server');
  const built = spawnSync('go', ['build', '-o', path, join(root, 'test', 'bench-go-server.go')], {
    encoding: 'utf8',
    env: { ...process.env, GO111MODULE: 'off', GOPATH: process.env.GOPATH ?? '/usr/share/gocode', GOCACHE: join(dir, 'go-cache') },
  });
  return built.status === 0 ? { path } : { why: `it did not build (${built.stderr.trim().split('\n')[0]}; ${how})` };
}

const results: Record<string, any> = {
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    sshd: sshd?.version ?? null,
    go: 'why' in goServer ? null : spawnSync('go', ['version'], { encoding: 'utf8' }).stdout.trim(),
    sshdPasswordHash: sshd?.passwordHash ?? null,
  },
  runs: RUNS,
  secondsPerRate: SECONDS,
};
type Rate = Awaited<ReturnType<typeof sessionRate>>;
const servers: Record<string, { algorithms: string; c1: Rate; c8: Rate; idleBytesPerSession?: number }> = {};
results.servers = servers;

// --- Measurements --------------------------------------------------------------------------------------------

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

results.throughput = {};
if (!args.attacks && 'step 08'.includes(args.only ?? '')) {
  progress('throughput of cat');
  const cat = await startStep('08-exec-requests.ts', env);
  results.throughput['step 08, cat'] = (await repeat(() => throughput(cat, alice.password, 'cat', true))).mbps;
  await cat.stop();
}
if (sshd && 'sshd'.includes(args.only ?? '')) {
  const server = { port: sshd.port, pid: sshd.pid, stop: async () => {} };
  const login = { username: SSHD_USER, privateKey: userKey };
  results.throughput['sshd, cat > /dev/null'] = (await repeat(() => throughput(server, login, 'cat > /dev/null', false))).mbps;
  results.throughput['sshd, cat'] = (await repeat(() => throughput(server, login, 'cat', true))).mbps;
}

// Port forwarding (what ssh -L carries) and SFTP (OpenSSH's sftp, put and get): steps 11 and 12 beside sshd's own
// forwarding and its internal-sftp.
if (!args.attacks && 'step 11 step 12 sshd'.includes(args.only ?? '')) {
  progress('throughput of port forwarding and SFTP');
  const source = await byteSource();
  writeFileSync(join(dir, 'sftp-source.bin'), randomBytes(CAT_BYTES));
  const askpass = join(dir, 'askpass');
  writeFileSync(askpass, '#!/bin/sh\necho wonderland\n', { mode: 0o755 });
  const byPassword = { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' };
  const forwarding = await startStep('11-port-forwarding.ts', env);
  results.throughput['step 11, ssh -L'] = (await repeat(() => forwarded(forwarding, alice.password, source.port))).mbps;
  await forwarding.stop();
  const files = await startStep('12-sftp-server.ts', { ...env, SFTP_HOME: join(dir, 'sftp-home') });
  const stepSftp = await repeat(() => sftpCopy(files.port, ['alice@127.0.0.1'], byPassword, 'big.bin'));
  results.throughput['step 12, sftp put'] = stepSftp.put;
  results.throughput['step 12, sftp get'] = stepSftp.get;
  await files.stop();
  if (sshd) {
    const server = { port: sshd.port, pid: sshd.pid, stop: async () => {} };
    const login = { username: SSHD_USER, privateKey: userKey };
    results.throughput['sshd, ssh -L'] = (await repeat(() => forwarded(server, login, source.port))).mbps;
    const keyLogin = ['-i', join(dir, 'id_ed25519'), '-o', 'IdentitiesOnly=yes', `${SSHD_USER}@127.0.0.1`];
    const sshdSftp = await repeat(() => sftpCopy(sshd!.port, keyLogin, {}, 'sftp/big.bin'));
    results.throughput['sshd, sftp put'] = sshdSftp.put;
    results.throughput['sshd, sftp get'] = sshdSftp.get;
  }
  source.close();
}
// git: a push and a clone of a 50 MiB repository (one commit of bytes that do not compress), by Debian's git
// through OpenSSH's ssh with a key: step 19 beside sshd, whose user hands git's commands to git-shell.
if (!args.attacks && 'step 19 git sshd'.includes(args.only ?? '')) {
  progress('git: push and clone of a 50 MiB repository');
  const work = join(dir, 'git-work');
  mkdirSync(work);
  writeFileSync(join(work, 'big.bin'), randomBytes(GIT_BYTES));
  for (const line of [['init', '--quiet', '-b', 'main'], ['add', 'big.bin'], ['commit', '--quiet', '-m', 'big']]) {
    spawnSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.com', ...line], { cwd: work });
  }
  const repos = join(dir, 'git-repos');
  const git = await startStep('19-git-server.ts', { ...env, GIT_REPOS_DIR: repos });
  const stepGit = await repeat(() => gitCopy(git.port, 'alice', (n) => `/alice/bench-${n}.git`, work));
  results.throughput['step 19, git push'] = stepGit.push;
  results.throughput['step 19, git clone'] = stepGit.clone;
  await git.stop();
  if (sshd) {
    const sshdRepos = join(dir, 'git');
    mkdirSync(sshdRepos, { mode: 0o755 });
    // sshd's repositories are made before each push, as git-shell makes none: an empty bare repository, its user's.
    const sshdGit = await repeat(() => gitCopy(sshd!.port, SSHD_USER, (n) => {
      const path = join(sshdRepos, `bench-${n}.git`);
      spawnSync('git', ['init', '--quiet', '--bare', path]);
      spawnSync('chown', ['-R', SSHD_USER, path]);
      return path;
    }, work));
    results.throughput['sshd, git-shell push'] = sshdGit.push;
    results.throughput['sshd, git-shell clone'] = sshdGit.clone;
  }
}
sshd?.stop();

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

// Step 18: Ink sessions opened, drawn and dropped one after another. Each has its own React tree: a tree, a timer
// or a listener left behind by a dropped connection would show as memory that grows with the sessions.
if (!args.attacks && 'step 18 ink'.includes(args.only ?? '')) {
  const ink = await startStep('18-ink-app.ts', env, ['--import', './test/spy-heap.ts']);
  let heapLines = '';
  ink.output.on('data', (chunk: Buffer) => (heapLines += chunk));
  /** The heap in use after a full collection in the step (test/spy-heap.ts), in MiB. */
  const heapAfterCollection = async () => {
    const before = heapLines.length;
    process.kill(ink.pid, 'SIGUSR2');
    for (let i = 0; i < 100 && !/collection: [\d.]+ MiB\n/.test(heapLines.slice(before)); i++) await sleep(50);
    return Number(/collection: ([\d.]+) MiB/.exec(heapLines.slice(before))?.[1] ?? NaN);
  };
  /** One session with a 100x30 pty: logs in, waits for the app's first screen, then drops the connection. */
  const drawnAndDropped = () => new Promise<void>((resolve, reject) => {
    const client = new ssh2.Client();
    const timer = setTimeout(() => (client.destroy(), reject(new Error('no screen within 10 s'))), 10_000);
    client.on('error', () => {});
    client.on('ready', () => client.shell({ term: 'xterm', cols: 100, rows: 30 }, (err, channel) => {
      if (err) return reject(err);
      let said = '';
      channel.on('data', (chunk: Buffer) => {
        said += chunk;
        if (!said.includes('Who is who')) return;
        clearTimeout(timer);
        client.destroy();
        resolve();
      });
    }));
    client.connect({ host: '127.0.0.1', port: ink.port, ...alice.password });
  });
  progress('step 18: Ink sessions, drawn and dropped');
  for (let i = 0; i < 10; i++) await drawnAndDropped(); // warmed up: Ink, React and Yoga loaded and compiled
  const measured: Record<string, { heapMiB: number; residentMiB: number }> = {};
  for (const [sessions, more] of [[10, 0], [110, 100], [210, 100]] as const) {
    for (let i = 0; i < more; i++) await drawnAndDropped();
    await sleep(1000);
    measured[`after ${sessions} sessions`] = { heapMiB: await heapAfterCollection(), residentMiB: residentMiB(ink.pid) };
  }
  results.ink = measured;
  console.table(Object.fromEntries(Object.entries(measured).map(([name, m]) => [`step 18, ${name}`, {
    'heap after a full collection, MiB': m.heapMiB.toFixed(2), 'resident, MiB': m.residentMiB.toFixed(1),
  }])));
  await ink.stop();
}

/**
 * Starts `file` afresh, runs `attack` on it, and meanwhile logs in again and again from another address (127.0.0.2,
 * the ssh2 client, password; or `login`), as a user would while the step is attacked. Returns how long the attack
 * took, the CPU time the step spent meanwhile (on the attack and on those logins), its resident memory before and
 * at its highest, and the login latencies.
 */
async function underAttack(file: string, attack: (port: number) => Promise<unknown>, stepEnv: Record<string, string> = {},
  login: (port: number) => Promise<void> = async (port) => close(await connect({ port, localAddress: '127.0.0.2', ...alice.password }))) {
  // With the step's own limits (empty means the default), not those set aside for the load generator above.
  const step = await startStep(file, { ...env, PER_SOURCE_MAX_STARTUPS: '', MAX_CONNECTIONS: '', ...stepEnv });
  const before = residentMiB(step.pid);
  const cpuBefore = cpuMs(step.pid);
  const attackBegun = performance.now();
  let attacking = true;
  const peak = peakDuring(step.pid, async () => {
    await attack(step.port);
    attacking = false;
  });
  const latencies: number[] = [];
  let failed = 0;
  while (attacking) {
    const begun = performance.now();
    try {
      await login(step.port);
      latencies.push(performance.now() - begun);
    } catch {
      failed += 1;
    }
  }
  const peakMiB = await peak;
  const seconds = (performance.now() - attackBegun) / 1000;
  const serverCpuSeconds = (cpuMs(step.pid) - cpuBefore) / 1000;
  await step.stop();
  latencies.sort((a, b) => a - b);
  return {
    seconds, serverCpuSeconds, rssBeforeMiB: before, rssPeakMiB: peakMiB, logins: latencies.length, loginsFailed: failed,
    loginP50ms: median(latencies), loginMaxMs: latencies.at(-1)!,
  };
}

/** A logged-in client of its own, for an attack. */
async function attacker(port: number): Promise<ssh2.Client> {
  const client = await connect({ port, ...alice.password });
  client.on('error', () => {}); // the step may well cut it off
  return client;
}
const GiB = 1024 ** 3;
/** Step 16's users: alice and bob hold the bench's key, and bob a one-time code secret. */
const totpDir = join(dir, 'totp');
mkdirSync(totpDir);
writeFileSync(join(totpDir, 'bob'), `${toBase32(randomBytes(20))}\n`);
writeFileSync(join(keysDir, 'bob'), userPublicKey);
/**
 * A login to step 16 as far as its first factor: alice's key, taken with partial success (ssh2 then says it has no
 * method left). No code is sent, so nobody's codes are counted.
 */
const firstFactor = (port: number) => new Promise<void>((resolve, reject) => {
  const client = new ssh2.Client();
  client.on('ready', () => reject(new Error('in without a code')));
  client.on('error', (err) => (err.message === 'All configured authentication methods failed' ? resolve() : reject(err)));
  client.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2', ...alice.key, authHandler: ['publickey'] });
});
const attacks: [string, string, (port: number) => Promise<unknown>, Record<string, string>?, ((port: number) => Promise<void>)?][] = [
  ['none, for 5 s (for comparison)', '03-trivial-channel.ts', () => sleep(5000)],
  ['1 GiB offered to the echo, never reading, until 5 s without progress', '05-accepting-input.ts', async (port) => {
    const client = await attacker(port);
    await sendWithoutReading(await shell(client), GiB, 5000);
    client.destroy();
  }],
  ['1 GiB offered to cat, never reading, until 5 s without progress', '08-exec-requests.ts', async (port) => {
    const client = await attacker(port);
    await sendWithoutReading(await exec(client, 'cat'), GiB, 5000);
    client.destroy();
  }],
  ['1 GiB sent to cat past the window, until cut off', '08-exec-requests.ts', async (port) => {
    const client = await attacker(port);
    await flood(client, await exec(client, 'cat'), GiB);
    client.destroy();
  }],
  ['a 4294967295-square pty and 3000 window-changes, never read', '10-window-change.ts', async (port) => {
    const client = await attacker(port);
    await ptyStorm(client, 3000);
    client.destroy();
  }],
  ['20 slot holders from one address, for 5 s', '03-trivial-channel.ts', async (port) => {
    const holders = Array.from({ length: 20 }, () => slotHolder(port, '127.0.0.1'));
    await sleep(5000);
    for (const holder of holders) holder.socket.destroy();
  }],
  ['2000 tcpip-forward requests in one burst, 20 times over (MAX_REMOTE_FORWARDS 10)', '11-port-forwarding.ts', async (port) => {
    for (let i = 0; i < 20; i++) {
      const client = await attacker(port);
      await remoteForwardBurst(client, 2000);
      client.destroy();
    }
  }],
  ['ports out of range in tcpip-forward and direct-tcpip, 2000 of each', '11-port-forwarding.ts', async (port) => {
    const client = await attacker(port);
    const answered = (send: (done: () => void) => void) => new Promise<void>((resolve) => send(resolve));
    for (let i = 0; i < 2000; i++) {
      const number = 65536 + i * 1000;
      await Promise.all([answered((done) => client.forwardIn('127.0.0.1', number, done)),
        answered((done) => client.forwardOut('127.0.0.1', 1, '127.0.0.1', number, done))]);
    }
    client.destroy();
  }],
  ['SETSTAT and FSETSTAT with setuid, setgid and sticky bits, 2000 times', '12-sftp-server.ts', async (port) => {
    const client = await attacker(port);
    const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
    const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('setuid.bin', 'w', (err, h) => (err ? reject(err) : resolve(h))));
    for (let i = 0; i < 1000; i++) {
      await new Promise((resolve) => sftp.chmod('setuid.bin', 0o7777, resolve));
      await new Promise((resolve) => sftp.fchmod(handle, 0o6755, resolve));
    }
    client.destroy();
  }, { SFTP_HOME: join(dir, 'sftp-home') }],
  ['4 x 32 KiB of ESC, then ESC [ and 4 MiB of digits, 10 times, to the chat room', '13-chat-room.ts', async (port) => {
    const client = await attacker(port);
    const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, c) => (err ? reject(err) : resolve(c))));
    channel.resume();
    for (let i = 0; i < 10; i++) await escapeFlood(channel);
    client.destroy();
  }],
  ['15 wrong codes for one user from four addresses (its codes locked after 10)', '16-two-factors.ts', async (port) => {
    for (let i = 0; i < 15; i++) {
      await new Promise<void>((resolve) => {
        const client = new ssh2.Client();
        client.on('ready', () => client.end()).on('error', () => resolve()).on('close', () => resolve());
        client.on('keyboard-interactive', (name, instructions, lang, prompts, finish) => finish(['000000']));
        client.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${3 + (i % 4)}`, username: 'bob',
          privateKey: userKey, tryKeyboard: true, authHandler: ['publickey', 'keyboard-interactive'] });
      });
    }
  }, { TOTP_DIR: totpDir }, firstFactor],
];
const underAttacks: Record<string, Awaited<ReturnType<typeof underAttack>>> = {};
results.underAttack = underAttacks;
for (const [name, file, attack, stepEnv, login] of attacks.filter(() => args.attacks || !args.only)) {
  progress(`under attack: ${file}, ${name}`);
  underAttacks[`${file.slice(0, 2)}: ${name}`] = await underAttack(file, attack, stepEnv, login);
}

// --- Report --------------------------------------------------------------------------------------------------

if (!args.attacks) console.table(Object.fromEntries(Object.entries(servers).map(([name, r]) => [name, {
  'sessions/s c=1': r.c1.perSecond.toFixed(1),
  'p50 ms c=1': r.c1.p50.toFixed(1),
  'p99 ms c=1': r.c1.p99.toFixed(1),
  'sessions/s c=8': r.c8.perSecond.toFixed(1),
  'p50 ms c=8': r.c8.p50.toFixed(1),
  'CPU ms/session': r.c8.cpuPerSession.toFixed(2),
  'KiB/idle session': r.idleBytesPerSession === undefined ? '' : (r.idleBytesPerSession / 1024).toFixed(1),
  // At c=8, how much of a core each side used (the load generator over its processes).
  'c=8 server / load CPU %': `${r.c8.serverCpuPercent.toFixed(0)} / ${r.c8.loadGeneratorCpuPercent.toFixed(0)}`,
  'c=8 limited by': limitedBy(r.c8),
  'c=8 failed': r.c8.failed,
}])));
for (const [name, r] of Object.entries(servers)) console.log(`${name}: ${r.algorithms}`);
if (!args.attacks && Object.keys(servers).length) {
  console.log(`c=8 limited by: the side that kept its processes ${BUSY}% busy or more (the load: ${LOAD_PROCESSES} `
    + `process(es), --load); "the machine" when neither did but both together used ${BUSY}% of its ${cpus().length} cores`);
}
for (const [name, mbps] of Object.entries(results.throughput as Record<string, number>)) {
  const what = name.includes('/dev/null') || !name.includes('cat') ? '' : ', sent back';
  console.log(`${name}: ${mbps.toFixed(1)} MB/s (${name.includes('git') ? 'a repository of 50' : '256'} MiB${what})`);
}
for (const [name, ms] of Object.entries(startupMs)) console.log(`start-up of step 03 (npx tsx to "listening on"), ${name}: ${ms.toFixed(0)} ms`);
if (results.fanOut) {
  const { p50, max, cpuPerMessage } = results.fanOut as { p50: number; max: number; cpuPerMessage: number };
  console.log(`step 13, one message to 100 members: ${p50.toFixed(1)} ms (slowest ${max.toFixed(1)} ms), `
    + `${cpuPerMessage.toFixed(2)} ms of CPU`);
}
console.table(Object.fromEntries(Object.entries(underAttacks).map(([name, r]) => [`step ${name}`, {
  'seconds': r.seconds.toFixed(1),
  'step CPU s': r.serverCpuSeconds.toFixed(1),
  'RSS before, MiB': r.rssBeforeMiB.toFixed(0),
  'RSS at most, MiB': r.rssPeakMiB.toFixed(0),
  'logins meanwhile': r.logins,
  'failed': r.loginsFailed,
  'login p50 ms': r.loginP50ms.toFixed(1),
  'login max ms': r.loginMaxMs.toFixed(1),
}])));

// Each comparison: what is divided by what, the quotient, and the target it has, if any. A figure of a
// server that was not measured (no sshd, or --only) is NaN, and comparisons with it are left out.
type Comparison = [name: string, value: number, target?: ['<=' | '>=', number]];
type Measured = (typeof servers)[string];
const figure = (name: string, pick: (measured: Measured) => number | undefined) =>
  (servers[name] && pick(servers[name])) ?? NaN;
const rate = (name: string, c: 'c1' | 'c8') => figure(name, (measured) => measured[c].perSecond);
const p50 = (name: string) => figure(name, (measured) => measured.c1.p50);
const cpu = (name: string) => figure(name, (measured) => measured.c8.cpuPerSession);
const idle = (name: string) => figure(name, (measured) => measured.idleBytesPerSession);
const throughputs = results.throughput as Record<string, number | undefined>;
const mbps = (name: string) => throughputs[name] ?? NaN;
const comparisons = ([
  ['sessions/s c=1, password: Nagle on / TCP_NODELAY', rate('step 03, password, Nagle on', 'c1') / rate('step 03, password', 'c1')],
  ['CPU ms/session, password: RSA host key / Ed25519', cpu('step 03, password, RSA host key') / cpu('step 03, password')],
  ['CPU ms/session, password: scrypt / plain text', cpu('step 03, scrypt password') / cpu('step 03, password')],
  ['CPU ms/session, password: ML-KEM hybrid / Curve25519', cpu('step 03, password') / cpu('step 03, password, Curve25519 key exchange')],
  ['sessions/s c=8, password: step 03 / sshd', rate('step 03, password', 'c8') / rate('sshd, password', 'c8'), ['>=', 4]],
  ['sessions/s c=8, public key: step 09 / sshd', rate('step 09, public key', 'c8') / rate('sshd, public key', 'c8'), ['>=', 3]],
  ['sessions/s c=8, scrypt password: step 03 / sshd', rate('step 03, scrypt password', 'c8') / rate('sshd, password', 'c8')],
  ['p50 ms c=1, password: step 03 / sshd', p50('step 03, password') / p50('sshd, password'), ['<=', 1]],
  ['p50 ms c=1, public key: step 09 / sshd', p50('step 09, public key') / p50('sshd, public key'), ['<=', 1]],
  ['CPU ms/session, public key: step 09 / sshd', cpu('step 09, public key') / cpu('sshd, public key')],
  // Go's x/crypto/ssh, at the key exchange it has (Curve25519), against the steps at the same.
  ['CPU ms/session, password: step 03 / Go', cpu('step 03, password, Curve25519 key exchange') / cpu('go, password'), ['<=', 1]],
  ['CPU ms/session, public key: step 09 / Go', cpu('step 09, public key, Curve25519 key exchange') / cpu('go, public key'), ['<=', 1.2]],
  ['sessions/s c=8, password: step 03 / Go', rate('step 03, password, Curve25519 key exchange', 'c8') / rate('go, password', 'c8'), ['>=', 1]],
  ['KiB/idle session: step 09 / Go', idle('step 09, public key') / idle('go, public key')],
  ['KiB/idle session: step 09 / sshd', idle('step 09, public key') / idle('sshd, public key')],
  ['MB/s: step 08 cat / sshd cat > /dev/null', mbps('step 08, cat') / mbps('sshd, cat > /dev/null'), ['>=', 0.5]],
  ['MB/s: step 08 cat / sshd cat', mbps('step 08, cat') / mbps('sshd, cat')],
  ['MB/s: step 11 ssh -L / sshd ssh -L', mbps('step 11, ssh -L') / mbps('sshd, ssh -L'), ['>=', 0.5]],
  ['MB/s: step 12 sftp put / sshd sftp put', mbps('step 12, sftp put') / mbps('sshd, sftp put'), ['>=', 0.5]],
  ['MB/s: step 12 sftp get / sshd sftp get', mbps('step 12, sftp get') / mbps('sshd, sftp get'), ['>=', 0.5]],
  ['MB/s: step 19 git push / sshd git-shell push', mbps('step 19, git push') / mbps('sshd, git-shell push'), ['>=', 0.5]],
  ['MB/s: step 19 git clone / sshd git-shell clone', mbps('step 19, git clone') / mbps('sshd, git-shell clone'), ['>=', 0.5]],
  // Two targets are absolute figures, not ratios.
  ['CPU ms/session, public key: step 09', cpu('step 09, public key'), ['<=', 1.5]],
  ['KiB/idle session: step 09', idle('step 09, public key') / 1024, ['<=', 20]],
  // On the current LTS where it was measured, else on this machine's Node.
  ...Object.entries(startupMs).filter(([name], i, all) => name === CURRENT_LTS || (i === 0 && !all.some(([other]) => other === CURRENT_LTS)))
    .map(([name, ms]): Comparison => [`start-up ms: npx tsx steps/03-trivial-channel.ts, ${name}`, ms, ['<=', 500]]),
] satisfies Comparison[]).filter(([, value]) => !Number.isNaN(value)) as Comparison[];
/** 'met', or by how much the figure misses its target (as a share of the target), or '' with no target. */
const met = ([, value, target]: Comparison) => {
  if (!target) return '';
  if (target[0] === '<=' ? value <= target[1] : value >= target[1]) return 'met';
  const percent = (Math.abs(value - target[1]) / target[1]) * 100;
  return `MISSED by ${percent.toFixed(percent < 10 ? 1 : 0)} %`;
};
if (comparisons.length) console.table(Object.fromEntries(comparisons.map((comparison) => {
  const [name, value, target] = comparison;
  return [name, { value: value.toFixed(2), target: target ? target.join(' ') : '', '': met(comparison) }];
})));
results.comparisons = Object.fromEntries(comparisons.map((comparison) => [comparison[0], {
  value: comparison[1], target: comparison[2]?.join(' ') ?? null, met: met(comparison) || null,
}]));
console.log(`median of ${RUNS} runs, ${SECONDS} s each for session rates; machine: ${JSON.stringify(results.machine)}`);
// All the figures, as JSON: where --json says, or in the system's temporary folder.
const jsonFile = args.json ?? join(tmpdir(), `conch-steps-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
console.log(`all figures: ${jsonFile}`);
process.exit(0);
