// What the tests share: starting a step as a real process, and driving it with OpenSSH, ssh2 and tmux.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type NetConnectOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import ssh2 from 'ssh2';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

const temporaryDirs: string[] = [];
process.on('exit', () => {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test process exits. */
export function temporaryDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'conch-steps-test-'));
  temporaryDirs.push(dir);
  return dir;
}

/** One folder of host keys for the whole test file, so that RSA keys are made once. */
const sharedKeys = temporaryDir();
/** And one for step 12's users' folders, so that no test writes to the project's home/. */
const sharedHome = temporaryDir();
/** And one for step 19's repositories, with no access file in it, so that no test writes to repos/ or keys/. */
const sharedRepos = temporaryDir();
/** And one for step 20's recordings, so that no test writes to recordings/. */
const sharedRecordings = temporaryDir();

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A process's command line, its words joined by spaces ('' once it has ended: a process may end while it is looked at). */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** The process and every process below it, from /proc (sshd forks two for each connection, and the shell below those). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // The process ended while we looked.
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]!) ?? []));
  return tree;
}

/** The processes under `pid` that still run (zombies and tsx's esbuild left out), as `PID COMMAND` each. */
export function descendants(pid = process.pid): string[] {
  return processTree(pid).slice(1).flatMap((child) => {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${child}/stat`, 'utf8');
    } catch {
      return []; // it ended while we looked
    }
    // `PID (COMMAND) STATE ...`: the command may hold spaces and parentheses, so read around the last ')'.
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const state = stat.slice(close + 2).split(' ')[0];
    // tsx's own esbuild service (`esbuild --service=...`) lives as long as the process that loaded tsx.
    return state === 'Z' || state === 'X' || name === 'esbuild' ? [] : [`${child} ${name}`];
  });
}

const terminals = new Set<Terminal>();
// Nothing a test file started may outlive it: after the file's suites and their hooks, a last hook waits a few seconds
// for what they stopped to end, then fails, naming what is left (a process under the file's own, or a tmux terminal
// never closed). So a file stops what it starts in a suite's hooks or in its tests, not in hooks of its own at the top
// level (this one runs before those). Only under the test runner: the bench imports this file too.
if (process.env.NODE_TEST_CONTEXT) {
  after(async () => {
    const open = [...terminals].map((terminal) => `a tmux terminal running ${terminal.command}`);
    for (const terminal of terminals) terminal.close();
    const left = await waitFor('every process this file started to end', () => {
      const now = descendants();
      return now.length === 0 ? now : undefined;
    }, 5_000).catch(() => descendants());
    const leftovers = [...open, ...left];
    // Named, then ended, so that they cannot trouble the files after this one.
    for (const each of left) {
      try {
        process.kill(Number(each.split(' ')[0]), 'SIGKILL');
      } catch {
        // it ended meanwhile
      }
    }
    if (leftovers.length) assert.fail(`this file left running: ${leftovers.join('; ')}`);
  });
}

export interface Step {
  port: number;
  pid: number;
  /** Everything the step has printed on standard output so far. */
  output(): string;
  /** And on standard error. */
  errors(): string;
  /** Sends SIGTERM and resolves with the exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Start through the `tsx` command, as the README does, rather than `node --import tsx`. */
  viaTsxCommand?: boolean;
  /** More modules for node to load before the step (`--import`). */
  preload?: string[];
  /** How many files the step may have open (`ulimit -n`, soft and hard), when not the machine's default. */
  openFiles?: number;
  /** The command that runs the step's file, when not this node with tsx: `['deno', 'run', '-A']`, say. */
  runtime?: string[];
}

/** Starts `steps/FILE` on a free port and resolves once it prints `listening on HOST:PORT`. */
export function startStep(file: string, options: StartOptions = {}): Promise<Step> {
  const child = launch(file, ['--port', '0', ...(options.args ?? [])], options);
  const printed = collect(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    // A step that has not started in 30 s is stopped, so that it cannot come up later with nobody to stop it.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not start in 30 s:\n${printed.stdout}${printed.stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code} before listening:\n${printed.stdout}${printed.stderr}`));
    });
    child.stdout!.on('data', () => {
      const match = /listening on \S+:(\d+)/.exec(printed.stdout);
      if (!match) return;
      clearTimeout(timer);
      resolve({
        port: Number(match[1]),
        pid: child.pid!,
        output: () => printed.stdout,
        errors: () => printed.stderr,
        stop: async (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
  });
}

/** Runs a step to its end (for start-up errors and --help) and returns what it printed and its exit status. */
export function runStep(file: string, args: string[], env: Record<string, string> = {}) {
  const child = launch(file, args, { env });
  const printed = collect(child);
  return new Promise<{ stdout: string; stderr: string; status: number | null }>((resolve) =>
    child.once('close', (status) => resolve({ ...printed, status })),
  );
}

/** Starts `steps/FILE` before the tests of the enclosing `describe` and stops it after them. */
export function useStep(file: string, options: StartOptions = {}): () => Step {
  let step: Step | undefined;
  before(async () => {
    step = await startStep(file, options);
  });
  after(async () => {
    await step?.stop();
    // The last net of shared/server/listen.ts logs what nothing else caught; in a test run it must never have been needed.
    assert.doesNotMatch(step?.output() ?? '', /^internal error/m);
  });
  return () => step ?? assert.fail(`${file} has not started`);
}

/**
 * `child`, with a listener for 'error' on each of its pipes. A child that exits before it reads its input makes a
 * write to it fail with EPIPE, and an error with no listener ends the whole test file; what the child did is told by
 * its exit status and output, which the test checks.
 */
export function guarded<T extends ChildProcess>(child: T): T {
  for (const pipe of [child.stdin, child.stdout, child.stderr]) pipe?.on('error', () => {});
  return child;
}

/** What a child process prints, as it arrives (its pipes `guarded`). */
function collect(child: ChildProcess): { stdout: string; stderr: string } {
  guarded(child);
  const printed = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk) => (printed.stdout += chunk));
  child.stderr!.on('data', (chunk) => (printed.stderr += chunk));
  return printed;
}

function launch(file: string, args: string[], options: StartOptions): ChildProcess {
  const path = join(root, 'steps', file);
  const preload = (options.preload ?? []).flatMap((m) => ['--import', m]);
  const command = options.runtime ? [...options.runtime, ...preload, path]
    : options.viaTsxCommand ? [join(root, 'node_modules', '.bin', 'tsx'), path]
      : [process.execPath, '--import', 'tsx', ...preload, path];
  if (options.openFiles) command.unshift('prlimit', `--nofile=${options.openFiles}:${options.openFiles}`, '--');
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    cwd: root,
    // The tests log in wrongly on purpose, often, from one address: no penalties unless a test asks.
    env: {
      ...process.env, HOST_KEYS_DIR: sharedKeys, SFTP_HOME: sharedHome, PORT: '', HOST: '', AUTH_PENALTY_MAX: '0',
      GIT_REPOS_DIR: join(sharedRepos, 'repos'), GIT_ACCESS: join(sharedRepos, 'git-access'),
      // Step 20's recordings page on a free port, not 2080: any number of steps run at once.
      RECORDINGS_DIR: join(sharedRecordings, 'recordings'), RECORDINGS_PORT: '0',
      // Step 22's HTTP front on a free port, not 8080, and its names apart from the reader's.
      TUNNELS_HTTP: '127.0.0.1:0', TUNNEL_NAMES: join(sharedRecordings, 'tunnel-names'),
      // Step 23's users' sockets apart from the reader's.
      SOCKETS_DIR: join(sharedRecordings, 'sockets'),
      // And no draining at SIGTERM (what a test leaves open must not keep the step), unless a test asks.
      SOURCE_PENALTY_MAX: '0', DRAIN_TIMEOUT: '0',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/**
 * Runs COMMAND to its end, without waiting synchronously (a server the test runs in its own process must answer
 * meanwhile): its output and exit status, and INPUT as its standard input if given.
 */
export function run(command: string, args: string[], env: Record<string, string> = {}, input?: string) {
  const child = guarded(spawn(command, args, { env: { ...process.env, ...env }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] }));
  child.stdin?.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise<{ stdout: string; stderr: string; status: number | null }>((resolve) =>
    child.once('close', (status) => resolve({ stdout, stderr, status })));
}

/**
 * An app on a free loopback port that reads to its end, then answers with the SHA-256 (hex) of what it read and 1 MiB
 * of its own; and `ask(to)`, which connects to it through a forward (`to`), sends 3 MB and its end, reads the answer
 * only once the app has handed all of it on (so that the step holds what its reader has not taken as the ends come),
 * and checks the answer whole. One `ask` an app. The answer is half of the window a step gives a channel (2 MiB), so
 * that the way there always holds it all while the reader waits: at 7 MB it did only at times, and the test, its
 * reader waiting for an app still writing, stood still.
 */
export async function hashingApp() {
  const answer = randomBytes(1024 * 1024);
  let answered = () => {};
  const handedOn = new Promise<void>((resolve) => (answered = resolve));
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const hash = createHash('sha256');
    socket.on('data', (chunk) => hash.update(chunk)).on('error', () => {});
    socket.on('end', () => socket.end(Buffer.concat([Buffer.from(hash.digest('hex')), answer]), () => answered()));
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const ask = async (to: NetConnectOpts) => {
    const request = randomBytes(3 * 1024 * 1024);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect({ ...to, allowHalfOpen: true }, () => socket.end(request));
      socket.pause();
      void handedOn.then(() => socket.resume());
      socket.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
    });
    assert.equal(got.length, 64 + answer.length);
    assert.equal(String(got.subarray(0, 64)), createHash('sha256').update(request).digest('hex'));
    assert.ok(got.subarray(64).equals(answer), 'the answer, whole');
  };
  return { port: (server.address() as AddressInfo).port, ask, close: () => server.close() };
}

/** An SSH_ASKPASS program that answers every password prompt with $TEST_PASSWORD (noting the time of each
 * prompt in $ASKPASS_LOG, when that is set). */
const askpass = join(temporaryDir(), 'askpass');
writeFileSync(askpass, [
  '#!/bin/sh',
  '[ -n "$ASKPASS_LOG" ] && date +%s.%N >> "$ASKPASS_LOG"',
  'printf "%s\\n" "$TEST_PASSWORD"',
  '',
].join('\n'));
chmodSync(askpass, 0o700);

/** The options and environment every OpenSSH client in the tests uses: no user config, no known_hosts. */
export const sshOptions = [
  '-F', '/dev/null',
  '-o', 'UserKnownHostsFile=/dev/null',
  '-o', 'StrictHostKeyChecking=no',
  '-o', 'ConnectTimeout=10',
];

export function sshEnv(password: string): Record<string, string> {
  return { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', TEST_PASSWORD: password };
}

export interface SshResult {
  stdout: string;
  /** Standard error, less the known_hosts warning that `UserKnownHostsFile=/dev/null` makes ssh print each time. */
  stderr: string;
  status: number | null;
}

/** Runs the real OpenSSH client, `ssh -p PORT USER@localhost ARGS...`, with the password given through SSH_ASKPASS. */
export function ssh(port: number, user: string, password: string, args: string[] = [], input = '',
  env: Record<string, string> = {}): Promise<SshResult> {
  const child = spawn('ssh', [...sshOptions, '-p', String(port), `${user}@localhost`, ...args], {
    env: { ...process.env, ...sshEnv(password), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  const printed = collect(child);
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('close', (status) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ stdout: printed.stdout, stderr: withoutKnownHostsWarning(printed.stderr), status });
    }),
  );
}

export function withoutKnownHostsWarning(text: string): string {
  return text.replace(/^Warning: Permanently added .* to the list of known hosts\.\r?\n/gm, '');
}

/** The lines of a text, without the empty one after the last newline. */
export function lines(text: string): string[] {
  return text.split(/\r?\n/).filter((line, i, all) => line !== '' || i < all.length - 1);
}

/** How many times the step's output matches `pattern` (a global RegExp). */
export function count(step: Step, pattern: RegExp): number {
  return step.output().match(pattern)?.length ?? 0;
}

/**
 * Waits until the step's output (from `from` on, a length of it read earlier) matches `pattern`, and resolves with
 * the match. A line the step logs before it answers a client may still reach this process after the answer: the two
 * come through different pipes. Fails at the deadline, with the output.
 */
export async function logged(step: Step, pattern: RegExp, from = 0): Promise<RegExpExecArray> {
  const once = new RegExp(pattern.source, pattern.flags.replace('g', ''));
  try {
    return await waitFor(`the log line ${pattern}`, () => once.exec(step.output().slice(from)) ?? undefined);
  } catch {
    return assert.fail(`the step never logged ${pattern}; it logged:\n${step.output().slice(from)}`);
  }
}

/** Waits until the step has logged the close of every connection it logged as opened. */
export function quiet(step: Step): Promise<true> {
  return waitFor('every connection to close', () =>
    count(step, / connection opened$/gm) === count(step, / connection closed$/gm) || undefined);
}

/** Logs in with the ssh2 client (as bob, by password, unless told otherwise); `end()` it when done. */
export async function ssh2Login(port: number, username = 'bob', password = 'builder'): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).on('error', reject); // later errors too: a reset after the end
    client.connect({ host: '127.0.0.1', port, username, password });
  });
  return client;
}

/** A loopback port that nothing listens on just now (the system picks it, and it is let go at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Polls until `check` returns something other than undefined, or fails after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Waits until process `pid` has written at least `least` bytes and then stopped: asleep, with no byte written since
 * the last look (waitFor's 50 ms). Resolves with the bytes it wrote; fails at the deadline if it writes on, or at once
 * if it ends.
 */
export function stalled(what: string, pid: number, least = 0, ms?: number): Promise<number> {
  let last = -1;
  return waitFor(what, () => {
    let io: string, stat: string;
    try {
      [io, stat] = [readFileSync(`/proc/${pid}/io`, 'utf8'), readFileSync(`/proc/${pid}/stat`, 'utf8')];
    } catch {
      throw new Error(`${what}: process ${pid} ended first`);
    }
    const written = Number(/^wchar: (\d+)$/m.exec(io)![1]);
    const asleep = stat.slice(stat.lastIndexOf(')') + 2).startsWith('S');
    const stopped = asleep && written >= least && written === last;
    last = written;
    return stopped ? written : undefined;
  }, ms);
}

/** A real terminal: a tmux server of its own, with one window of the given size running `command`. */
export class Terminal {
  private readonly dir = temporaryDir();
  private readonly socket = join(this.dir, 'tmux.sock');
  private readonly statusFile = join(this.dir, 'status');

  /** The command line the terminal runs, for messages. */
  readonly command: string;

  constructor(command: string[], env: Record<string, string>, width = 100, height = 30) {
    this.command = command.join(' ');
    terminals.add(this);
    const envArgs = Object.entries(env).flatMap(([key, value]) => ['-e', `${key}=${value}`]);
    // When the command ends, its exit status goes to a file and the window stays open, unchanged, to be read.
    const script = `${command.map(quote).join(' ')}; echo $? > ${quote(this.statusFile)}; exec sleep 600`;
    this.tmux('new-session', '-d', '-c', root, '-x', String(width), '-y', String(height), ...envArgs, script);
  }

  /** The visible screen, one string a row, less trailing blank rows and the known_hosts warning (see SshResult). */
  screen(): string[] {
    const rows = withoutKnownHostsWarning(this.tmux('capture-pane', '-p')).split('\n');
    while (rows.length && rows[rows.length - 1]!.trim() === '') rows.pop();
    return rows;
  }

  /** The screen and every row scrolled off it above, in one capture, as screen() gives rows. */
  history(): string[] {
    const rows = withoutKnownHostsWarning(this.tmux('capture-pane', '-p', '-S', '-')).split('\n');
    while (rows.length && rows[rows.length - 1]!.trim() === '') rows.pop();
    return rows;
  }

  /** The command's exit status once it has ended, else undefined. */
  exitStatus(): number | undefined {
    try {
      const text = readFileSync(this.statusFile, 'utf8');
      return text.endsWith('\n') ? Number(text) : undefined;
    } catch {
      return undefined;
    }
  }

  sendKeys(...keys: string[]): void {
    this.tmux('send-keys', ...keys);
  }

  /** Types `exit STATUS` at the shell, and resolves with the exit status of the command the terminal ran. */
  exitWith(status: number): Promise<number> {
    this.sendKeys('-l', `exit ${status}`);
    this.sendKeys('Enter');
    return waitFor('the command to end', () => this.exitStatus());
  }

  /** Types `line` and Enter, then waits until a row of the screen is `row` exactly; resolves with the screen. */
  async typeLine(line: string, row: string): Promise<string[]> {
    this.sendKeys('-l', line);
    this.sendKeys('Enter');
    return waitFor(`the row "${row}" after typing ${line}`, () => {
      const screen = this.screen(); // one capture, checked and returned
      return screen.includes(row) ? screen : undefined;
    });
  }

  /** Resizes the window, as a person dragging its corner would; the program in it gets SIGWINCH. */
  resize(width: number, height: number): void {
    this.tmux('resize-window', '-x', String(width), '-y', String(height));
  }

  /** A tmux format about the pane, such as `#{alternate_on}` or `#{cursor_flag}`. */
  display(format: string): string {
    return this.tmux('display-message', '-p', format).trim();
  }

  close(): void {
    terminals.delete(this);
    spawnSync('tmux', ['-S', this.socket, 'kill-server']);
  }

  private tmux(...args: string[]): string {
    const result = spawnSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }
}

/** Runs a command through ssh2's client: what it printed, and how it ended (status or signal). */
export function execute(client: ssh2.Client, command: string, options: ssh2.ExecOptions = {}, input?: string) {
  return new Promise<{ out: string; err: string; code: number | null; signal?: string }>((resolve, reject) =>
    client.exec(command, options, (err, channel) => {
      if (err) return reject(err);
      const result = { out: '', err: '', code: null as number | null, signal: undefined as string | undefined };
      channel.on('data', (chunk: Buffer) => (result.out += chunk));
      channel.stderr.on('data', (chunk: Buffer) => (result.err += chunk));
      channel.on('exit', (code: number | null, name?: string) => Object.assign(result, { code, signal: name }));
      channel.on('close', () => resolve(result));
      if (input !== undefined) channel.end(input);
    }));
}

/** Runs `command` (an `ssh` to a shell) in a real terminal, waits for the shell's prompt, then `use`s it; closes it after. */
export async function atPrompt<T>(command: string[], env: Record<string, string>, use: (terminal: Terminal) => Promise<T>): Promise<T> {
  const terminal = new Terminal(command, env);
  try {
    await waitFor('the prompt', () => /^[$#] ?$/.test(terminal.screen().at(-1) ?? '') || undefined);
    return await use(terminal);
  } finally {
    terminal.close();
  }
}

function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** An SSH_MSG_KEXINIT from a client, framed as an unencrypted binary packet (RFC 4253, sections 6 and 7.1). */
export function kexinitPacket(random: () => number = Math.random, kex = 'curve25519-sha256'): Buffer {
  const nameList = (names: string) => {
    const text = Buffer.from(names);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(text.length);
    return Buffer.concat([length, text]);
  };
  const cookie = Buffer.from(Array.from({ length: 16 }, () => Math.floor(random() * 256)));
  const payload = Buffer.concat([
    Buffer.from([20]), cookie,
    nameList(kex), nameList('ssh-ed25519'),
    nameList('aes128-ctr'), nameList('aes128-ctr'),
    nameList('hmac-sha2-256-etm@openssh.com'), nameList('hmac-sha2-256-etm@openssh.com'),
    nameList('none'), nameList('none'), nameList(''), nameList(''),
    Buffer.from([0, 0, 0, 0, 0]),
  ]);
  return plainPacket(payload);
}

/** A message framed as an unencrypted binary packet (RFC 4253, section 6), as sent before the first key exchange. */
export function plainPacket(payload: Buffer): Buffer {
  let padding = 8 - ((4 + 1 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const header = Buffer.alloc(5);
  header.writeUInt32BE(1 + payload.length + padding, 0);
  header[4] = padding;
  return Buffer.concat([header, payload, Buffer.alloc(padding)]);
}

/** A small deterministic generator (mulberry32), so that a failing run can be repeated with the same seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where `.ci/today` keeps today's clients and runtimes. */
const todayCache = process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps';

/** The Debian testing root that `.ci/today` makes, with OpenSSH 10, PuTTY 0.85, Dropbear 2026 and ssh-audit 3.3. */
export function debianTesting(): string {
  const dir = join(todayCache, 'debian-testing');
  if (!existsSync(join(dir, '.complete'))) assert.fail(`no Debian testing root in ${dir}: run sudo bash .ci/today once`);
  return dir;
}

/** A runtime that `.ci/today` installed: `node22/bin/node`, `.bin/deno`, ... */
export function todayRuntime(path: string): string {
  const file = join(todayCache, 'runtimes', 'node_modules', path);
  if (!existsSync(file)) assert.fail(`no ${path} in ${todayCache}/runtimes: run sudo bash .ci/today once`);
  return file;
}

/**
 * A command line that runs `command` inside the Debian testing root (with chroot), in a home of its own (so that no
 * known_hosts carries over), and the environment it needs for SSH_ASKPASS to answer `password` there.
 */
export function debianTestingCommand(command: string[], password = '', home = debianTestingHome()): [string[], Record<string, string>] {
  const dir = debianTesting();
  const askpassInside = `/tmp/conch-steps-askpass-${process.pid}`;
  if (!existsSync(join(dir, askpassInside))) {
    writeFileSync(join(dir, askpassInside), '#!/bin/sh\nprintf "%s\\n" "$TEST_PASSWORD"\n', { mode: 0o755 });
    temporaryDirs.push(join(dir, askpassInside));
  }
  return [['chroot', dir, 'env', `HOME=${home.slice(dir.length)}`, ...command],
    { SSH_ASKPASS: askpassInside, SSH_ASKPASS_REQUIRE: 'force', TEST_PASSWORD: password }];
}

/** A fresh home folder inside the Debian testing root (its path outside), removed when the test process exits. */
export function debianTestingHome(): string {
  const home = mkdtempSync(join(debianTesting(), 'tmp', 'conch-steps-home-'));
  temporaryDirs.push(home);
  return home;
}

/** `ssh ARGS`, OpenSSH 10.6 from the Debian testing root, as a command line and environment for a Terminal. */
export function todaysSsh(args: string[], password: string): [string[], Record<string, string>] {
  return debianTestingCommand(['ssh', ...args], password);
}

/** `ssh -p PORT USER@localhost ARGS...` as `ssh()` runs it, but with OpenSSH 10.6: for what the lessons show. */
export function todaysSshRun(port: number, user: string, password: string, args: string[] = [], input = ''): Promise<SshResult> {
  return inDebianTesting(['ssh', ...sshOptions, '-p', String(port), `${user}@localhost`, ...args], password, input);
}

/** Runs a program of the Debian testing root; resolves with what it printed (less the known_hosts warning). */
export function inDebianTesting(command: string[], password = '', input = ''): Promise<SshResult> {
  const [line, env] = debianTestingCommand(command, password);
  const child = spawn(line[0]!, line.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const printed = collect(child);
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => child.once('close', (status) => {
    clearTimeout(timer);
    running.delete(child);
    resolve({ stdout: printed.stdout, stderr: withoutKnownHostsWarning(printed.stderr), status });
  }));
}

/** The findings of an ssh-audit report, `(kex) NAME: [warn] TEXT`, each with the algorithm it belongs to. */
export function auditFindings(report: string): string[] {
  let algorithm = '';
  const findings: string[] = [];
  for (const line of lines(report)) {
    const entry = /^\((kex|key|enc|mac)\) (\S+)/.exec(line);
    if (entry) algorithm = `(${entry[1]}) ${entry[2]}`;
    else if (!/^\s+`-/.test(line)) algorithm = '';
    const finding = /\[(fail|warn)\] (.*)$/.exec(line);
    if (algorithm && finding) findings.push(`${algorithm}: [${finding[1]}] ${finding[2]}`);
  }
  return findings;
}

/**
 * Starts Debian's HAProxy in front of `servers` (`HOST:PORT` each) on a free port of 127.0.0.1, in TCP mode, round
 * robin, sending each a PROXY v2 header and checking it every 300 ms; its settings file goes in `dir`.
 */
export async function startHaproxy(dir: string, servers: string[]): Promise<{ port: number; process: ChildProcess }> {
  const port = await freePort();
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, [
    'global', '  maxconn 2000',
    'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 60s', '  timeout server 60s',
    '  retries 3', '  option redispatch',
    'frontend ssh', `  bind 127.0.0.1:${port}`, '  default_backend steps',
    'backend steps', '  balance roundrobin',
    ...servers.map((server, i) => `  server step${i} ${server} send-proxy-v2 check inter 300ms fall 1 rise 2`),
    '',
  ].join('\n'));
  // What it prints is not kept, but it is read: a pipe nobody reads would fill up and stop it.
  const child = guarded(spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.stdout.resume();
  child.stderr.resume();
  running.add(child);
  child.once('exit', () => running.delete(child));
  return { port, process: child };
}
