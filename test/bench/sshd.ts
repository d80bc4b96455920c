// OpenSSH's sshd for `npm run bench`: started on loopback with a config, host key and user of the bench's own, so
// that it is measured beside the steps doing the same work. Nothing here touches the machine's own sshd.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../helpers.ts';

/** The user the bench logs in as: sshd checks passwords against /etc/shadow, so it must be a real one. */
export const SSHD_USER = 'conch-bench';

export interface Sshd {
  port: number;
  pid: number;
  password: string;
  /** How the system stored the user's password (`yescrypt`, `sha512crypt`, ...). */
  passwordHash: string;
  version: string;
  stop: () => void;
}

/** Where sshd is, or why it cannot be used (with how to install it). */
export function findSshd(): { path: string } | { why: string } {
  const path = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'].find((candidate) => existsSync(candidate));
  if (!path) return { why: 'sshd is not installed (Debian: `apt-get install -y openssh-server`)' };
  if (process.getuid?.() !== 0) return { why: 'starting sshd with a user of its own needs root' };
  return { path };
}

function run(command: string, args: string[], input?: string): string {
  const result = spawnSync(command, args, { input, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr.trim() || result.status}`);
  return result.stdout;
}

const HASHES: Record<string, string> = { y: 'yescrypt', '6': 'sha512crypt', '5': 'sha256crypt', '2b': 'bcrypt' };

/**
 * Starts `sshd -D` on a free loopback port: its own Ed25519 host key, password and public-key login for
 * SSHD_USER (made now with a random password, removed by `stop()`) whose shell prints step 03's goodbye line for a
 * shell, runs git's commands with git-shell and any other command for an exec (`cat > /dev/null`), its internal
 * SFTP server, and TCP forwarding.
 */
export async function startSshd(sshdPath: string, dir: string, publicKey: string): Promise<Sshd> {
  // The folder is read by sshd as the user (authorized keys, the forced command), so it must be open to it.
  chmodSync(dir, 0o755);
  // A user of that name whose home is one of the bench's temporary folders was left by a bench that was killed.
  const existing = readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith(`${SSHD_USER}:`));
  if (existing && !existing.includes('/conch-steps-test-')) {
    throw new Error(`a user ${SSHD_USER} exists already, and is not the bench's: the bench leaves it alone`);
  }
  if (existing) spawnSync('userdel', [SSHD_USER]);
  // The user's shell prints step 03's goodbye line for a shell, hands git's commands to git-shell (as a git host's
  // user has it for a shell), and runs any other command (`sh -c`) for an exec; no ForceCommand, which would take
  // the place of the SFTP subsystem too.
  const shell = join(dir, 'sshd_shell');
  writeFileSync(shell, [
    '#!/bin/sh',
    '[ "$1" = "-c" ] && case "$2" in git-*) exec git-shell -c "$2";; esac',
    '[ "$1" = "-c" ] && exec /bin/sh -c "$2"',
    "printf 'This session is very simple. Goodbye!\\r\\n'",
    '',
  ].join('\n'), { mode: 0o755 });
  run('useradd', ['--no-create-home', '--home-dir', dir, '--shell', shell, SSHD_USER]);
  // Where the user may write: SFTP's put lands here (the home itself is root's).
  mkdirSync(join(dir, 'sftp'), { mode: 0o755 });
  run('chown', [SSHD_USER, join(dir, 'sftp')]);
  const removeUser = () => spawnSync('userdel', [SSHD_USER]);
  process.on('exit', removeUser);
  const password = randomBytes(12).toString('base64url');
  run('chpasswd', [], `${SSHD_USER}:${password}\n`);
  const shadow = readFileSync('/etc/shadow', 'utf8').split('\n').find((line) => line.startsWith(`${SSHD_USER}:`))!;
  const passwordHash = HASHES[shadow.split(':')[1]!.split('$')[1]!] ?? 'unknown';

  const hostKey = join(dir, 'sshd_host_ed25519_key');
  run('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', hostKey]);
  mkdirSync(join(dir, 'sshd_authorized_keys'), { mode: 0o755 });
  writeFileSync(join(dir, 'sshd_authorized_keys', SSHD_USER), publicKey, { mode: 0o644 });

  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    'PidFile none',
    'UsePAM no',
    'StrictModes no',
    `AuthorizedKeysFile ${join(dir, 'sshd_authorized_keys', '%u')}`,
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    `AllowUsers ${SSHD_USER}`,
    'Subsystem sftp internal-sftp',
    'AllowTcpForwarding yes',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    // As the steps: at most 10 connections logging in at once (sshd's default refuses some from the 11th).
    'MaxStartups 10',
    '',
  ].join('\n'));
  mkdirSync('/run/sshd', { recursive: true }); // Debian's sshd wants its privilege-separation folder
  const version = spawnSync(sshdPath, ['-V'], { encoding: 'utf8' }).stderr.split(',')[0]!.trim();
  const child = spawn(sshdPath, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  const collect = (chunk: Buffer) => (errors += chunk);
  child.stderr!.on('data', collect);
  const stop = () => {
    child.kill();
    removeUser();
  };
  process.on('exit', () => child.kill());
  await new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      if (child.exitCode !== null) return reject(new Error(`sshd exited: ${errors.trim()}`));
      if (/Server listening on/.test(errors)) return resolve();
      if (Date.now() - started > 10_000) return reject(new Error(`sshd did not start: ${errors.trim()}`));
      setTimeout(check, 20);
    };
    check();
  });
  // What it logs for each connection is not kept, but it is read: a pipe nobody reads would fill up and stop it.
  child.stderr!.off('data', collect).resume();
  return { port, pid: child.pid!, password, passwordHash, version, stop };
}
