// Bytes through a session, side by side with sshd: 256 MiB through step 08's `cat` and sshd's, through `ssh -L` to
// step 11 and to sshd, OpenSSH's `sftp` putting and getting a file with step 12 and with sshd's internal-sftp, and
// Debian's git pushing and cloning a repository of 50 MiB with step 19 and with sshd's git-shell.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { join } from 'node:path';
import type { ConnectConfig } from 'ssh2';
import { alice, type Args, dir, env, median, progress, repeat, RUNS, type Server, startStep, userKey } from './harness.ts';
import { close, connect } from './load.ts';
import { type Sshd, SSHD_USER } from './sshd.ts';
import { freePort } from '../helpers.ts';

const CAT_BYTES = 256 * 1024 * 1024;
/** The size of the repository that git pushes and clones (step 19). */
const GIT_BYTES = 50 * 1024 * 1024;

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
    channel.write('go'); // the source sends once asked
    channel.once('close', () => (received === CAT_BYTES ? resolve() : reject(new Error(`got ${received} of ${CAT_BYTES}`))));
  }));
  const mbps = CAT_BYTES / 1e6 / ((performance.now() - begun) / 1000);
  await close(client);
  return { mbps };
}

/** The ciphers OpenSSH's clients are measured with: the AES-GCM that ssh2's client prefers, and OpenSSH's own first. */
const CIPHERS = ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com'] as const;

/**
 * MB/s of CAT_BYTES sent by the TCP server at `sourcePort` through OpenSSH's own `ssh -N -L`, with `cipher`: timed
 * from the connection to the forwarded port to its last byte, once ssh has logged in and listens (not the login).
 */
async function openSshForwarded(port: number, login: string[], env: Record<string, string>, cipher: string, sourcePort: number) {
  const local = await freePort();
  const ssh = spawn('ssh', ['-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no',
    '-o', 'LogLevel=ERROR', '-o', 'ExitOnForwardFailure=yes', '-o', `Ciphers=${cipher}`, '-N',
    '-L', `${local}:127.0.0.1:${sourcePort}`, '-p', String(port), ...login], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  ssh.stderr.on('data', (chunk) => (errors += chunk)).on('error', () => {});
  ssh.on('error', (err) => (errors += err.message)); // no ssh: it closes, and the loop below says why
  const exited = once(ssh, 'close');
  try {
    // ssh listens once it has logged in: until then a connection is refused.
    const deadline = performance.now() + 20_000;
    for (;;) {
      const connected = await new Promise<boolean>((resolve) => {
        const socket = tcpConnect(local, '127.0.0.1').once('connect', () => (socket.destroy(), resolve(true)))
          .once('error', () => resolve(false));
      });
      if (connected) break;
      if (ssh.exitCode !== null || performance.now() > deadline) throw new Error(`ssh -L: ${errors.trim() || 'never listened'}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // (That probe opened a channel too, but sent nothing, so the source sent nothing through it.) This one is timed.
    const begun = performance.now();
    const received = await new Promise<number>((resolve, reject) => {
      let count = 0;
      tcpConnect(local, '127.0.0.1').on('data', (chunk: Buffer) => (count += chunk.length))
        .once('end', () => resolve(count)).once('error', reject).write('go');
    });
    if (received !== CAT_BYTES) throw new Error(`ssh -L: got ${received} of ${CAT_BYTES}`);
    return { mbps: CAT_BYTES / 1e6 / ((performance.now() - begun) / 1000) };
  } finally {
    ssh.kill();
    await exited;
  }
}

/** A TCP server on loopback that sends CAT_BYTES to each connection once it has sent something, then closes it. */
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
    socket.once('data', pump).on('error', () => {});
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

/** Measures each server's throughput into `results.throughput`; sshd's too, if it started. */
export async function measureThroughput(args: Args, results: Record<string, any>, sshd: Sshd | undefined): Promise<void> {
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
    // OpenSSH's own ssh -L, with each cipher: step 11 and sshd in turn, round by round (the machine's speed moves).
    const sshdLogin = ['-i', join(dir, 'id_ed25519'), '-o', 'IdentitiesOnly=yes', `${SSHD_USER}@127.0.0.1`];
    for (const cipher of CIPHERS) {
      const rounds: { step: number[]; sshd: number[] } = { step: [], sshd: [] };
      for (let round = 0; round < RUNS; round++) {
        rounds.step.push((await openSshForwarded(forwarding.port, ['alice@127.0.0.1'], byPassword, cipher, source.port)).mbps);
        if (sshd) rounds.sshd.push((await openSshForwarded(sshd.port, sshdLogin, {}, cipher, source.port)).mbps);
      }
      results.throughput[`step 11, OpenSSH's ssh -L, ${cipher}`] = median(rounds.step);
      if (sshd) results.throughput[`sshd, OpenSSH's ssh -L, ${cipher}`] = median(rounds.sshd);
    }
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
      const sshdSftp = await repeat(() => sftpCopy(sshd!.port, sshdLogin, {}, 'sftp/big.bin'));
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
}
