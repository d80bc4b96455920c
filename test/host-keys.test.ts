// Host keys a client learns: after login every step tells its host keys (hostkeys-00@openssh.com), and OpenSSH with
// UpdateHostKeys adds the ones it lacks to known_hosts, once the step has proven it holds them. Then a rotation as
// shared/README.md shows it: a next key beside the key, learned; moved into place; the old one forgotten; no prompt.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { debianTesting, debianTestingCommand, debianTestingHome, guarded, sshEnv, startStep, temporaryDir, waitFor } from './helpers.ts';

/** The keys a known_hosts file holds, as `TYPE BASE64` (less the host name), sorted. */
function held(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ').slice(1, 3).join(' ')).sort() : [];
}

/** A public key file's `TYPE BASE64`. */
const publicKey = (file: string) => readFileSync(file, 'utf8').split(' ').slice(0, 2).join(' ');

/**
 * Logs in to step 08 on `port` with strict host key checking, UpdateHostKeys and `knownHosts` (a path as that ssh sees
 * it), runs `cat` there until `known` holds `expected`, then ends its input: resolves with ssh's status and stderr.
 */
async function learns(todays: boolean, port: number, knownHosts: string, known: string, expected: string[]) {
  const args = ['-F', '/dev/null', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'UpdateHostKeys=yes',
    '-o', 'LogLevel=ERROR', '-p', String(port), 'alice@localhost', 'cat'];
  const [line, env] = todays ? debianTestingCommand(['ssh', ...args], 'wonderland') : [['ssh', ...args], sshEnv('wonderland')];
  const child = guarded(spawn(line[0]!, line.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const closed = once(child, 'close');
  try {
    // The session lasts as long as its input: time for ssh to ask for the proofs and write down what it learned.
    await waitFor(`known_hosts to hold ${expected.length} keys (${stderr})`, () => (held(known).join('\n') === expected.join('\n') || undefined));
  } finally {
    child.stdin.end();
  }
  const [status] = await closed;
  return { status, stderr };
}

describe('host keys a client learns, and a rotation without a prompt (UpdateHostKeys)', { timeout: 180_000 }, () => {
  for (const [name, todays] of [['OpenSSH 9.2', false], ['OpenSSH 10.6', true]] as const) {
    test(`${name}: knowing the Ed25519 key alone it learns the RSA key; then the next key; then forgets the old one`, async () => {
      const keys = join(temporaryDir(), 'keys');
      mkdirSync(keys, { mode: 0o700 });
      const home = todays ? debianTestingHome() : temporaryDir();
      const known = join(home, 'known_hosts');
      const knownAsSeen = todays ? known.slice(debianTesting().length) : known;
      const key = (file: string) => publicKey(join(keys, file));
      const withStep = async <T>(use: (port: number) => Promise<T>) => {
        const step = await startStep('08-exec-requests.ts', { env: { HOST_KEYS_DIR: keys } });
        try {
          return await use(step.port);
        } finally {
          await step.stop();
        }
      };

      // The step makes its keys; the client knows the Ed25519 one alone, as if it had checked it by hand.
      await withStep(async (port) => {
        writeFileSync(known, `[localhost]:${port} ${key('ssh_host_ed25519_key.pub')}\n`);
        const first = [key('ssh_host_ed25519_key.pub'), key('ssh_host_rsa_key.pub')].sort();
        assert.deepEqual(await learns(todays, port, knownAsSeen, known, first), { status: 0, stderr: '' });

        // A next key beside the key: the step tells it and proves it, and goes on signing with the old one.
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'next', '-f', join(keys, 'ssh_host_ed25519_key.next')]);
      });
      const old = key('ssh_host_ed25519_key.pub');
      const next = key('ssh_host_ed25519_key.next.pub');
      await withStep(async (port) => {
        // Each start has a port of its own, which known_hosts names: the lines follow it.
        writeFileSync(known, readFileSync(known, 'utf8').replace(/^\[localhost\]:\d+/gm, `[localhost]:${port}`));
        const learned = [old, key('ssh_host_rsa_key.pub'), next].sort();
        assert.deepEqual(await learns(todays, port, knownAsSeen, known, learned), { status: 0, stderr: '' });
      });

      // The next key moved into place: the step signs with it, which the client knows already, and the old is dropped.
      renameSync(join(keys, 'ssh_host_ed25519_key.next'), join(keys, 'ssh_host_ed25519_key'));
      renameSync(join(keys, 'ssh_host_ed25519_key.next.pub'), join(keys, 'ssh_host_ed25519_key.pub'));
      await withStep(async (port) => {
        writeFileSync(known, readFileSync(known, 'utf8').replace(/^\[localhost\]:\d+/gm, `[localhost]:${port}`));
        assert.deepEqual(await learns(todays, port, knownAsSeen, known, [key('ssh_host_rsa_key.pub'), next].sort()),
          { status: 0, stderr: '' });
      });
    });
  }
});
