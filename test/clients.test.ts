// The clients readers have today, from a Debian testing root (.ci/today): OpenSSH 10.6, PuTTY 0.85, Dropbear 2026
// and ssh-audit 3.3. OpenSSH 10.1 and later warn on every connection without a post-quantum key exchange; with
// every step, they must neither warn nor fall back.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { code, PERIOD, toBase32 } from '../shared/login/totp.ts';
import {
  auditFindings, count, debianTesting, debianTestingHome, inDebianTesting, root, ssh, startStep, temporaryDir, useStep, waitFor,
  type Step,
} from './helpers.ts';

const PQ = 'mlkem768x25519-sha256';
const GOODBYE = 'This session is very simple. Goodbye!\r\n';
const spy = { preload: ['./test/spy-kex.ts'] };
const sshTesting = ['ssh', '-v', '-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no'];

/** What the step's spy saw the client on `port` negotiate (see spy-kex.ts). */
function negotiated(step: Step): Promise<string[]> {
  return waitFor('the key exchange', () => {
    const seen = [...step.output().matchAll(/^key exchange \d+ (\S+)$/gm)].map((m) => m[1]!);
    return seen.length ? seen : undefined;
  });
}

describe('OpenSSH 10.6 and every step: post-quantum, no warning', { timeout: 180_000 }, () => {
  const steps = readdirSync(join(root, 'steps')).filter((file) => file.endsWith('.ts'));
  // A key as well as the password, for the steps that take keys (step 14 takes nothing else): made in a home
  // inside the Debian testing root, and listed for alice.
  const home = debianTestingHome();
  const keys = temporaryDir();
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(home, 'key')]);
  writeFileSync(join(keys, 'alice'), readFileSync(join(home, 'key.pub')));
  const withKey = ['-i', `${home.slice(debianTesting().length)}/key`];
  // Step 16 asks for a one-time code after the key: alice's secret, and the code of the moment as her "password".
  const totp = temporaryDir();
  const secret = Buffer.from('the secret of alice!');
  writeFileSync(join(totp, 'alice'), toBase32(secret));
  const passwordOf = (file: string) => (file.startsWith('16') ? code(secret, Math.floor(Date.now() / 1000 / PERIOD)) : 'wonderland');
  for (const file of steps) {
    test(file, async () => {
      const step = await startStep(file, { ...spy, env: { SSH_AUTHORIZED_KEYS_DIR: keys, TOTP_DIR: totp } });
      try {
        // `true` as a command: the steps without exec refuse it, but only once logged in; step 01 logs no one in.
        const login = [...sshTesting, ...withKey, '-p', String(step.port), 'alice@127.0.0.1', 'true'];
        const result = await inDebianTesting(login, passwordOf(file));
        assert.match(result.stderr, /^debug1: kex: algorithm: mlkem768x25519-sha256$/m);
        assert.doesNotMatch(result.stderr, /WARNING|post-quantum|store now, decrypt later/);
        if (file.startsWith('01')) assert.match(result.stderr, /Permission denied/);
        else assert.match(result.stderr, /^Authenticated to 127\.0\.0\.1 /m);
        assert.deepEqual(await negotiated(step), [PQ]);
      } finally {
        await step.stop();
      }
    });
  }
});

describe('the other clients of 2026, and those of 2022', { timeout: 120_000 }, () => {
  const step = useStep('03-trivial-channel.ts', spy);
  const kexes = () => [...step().output().matchAll(/^key exchange \d+ (\S+)$/gm)].map((m) => m[1]!);

  test('PuTTY 0.85 logs in with the post-quantum hybrid', async () => {
    const keyscan = spawnSync('ssh-keyscan', ['-p', String(step().port), '-t', 'ed25519', '127.0.0.1'], { encoding: 'utf8' });
    const fingerprint = spawnSync('ssh-keygen', ['-lf', '-'], { input: keyscan.stdout, encoding: 'utf8' }).stdout.split(' ')[1]!;
    const before = kexes().length;
    const result = await inDebianTesting(['plink', '-v', '-batch', '-ssh', '-P', String(step().port), '-pw', 'wonderland',
      '-hostkey', fingerprint, 'alice@127.0.0.1']);
    assert.equal(result.stdout, GOODBYE, result.stderr);
    assert.match(result.stderr, /ML-KEM-768 \/ Curve25519 hybrid key exchange/);
    await waitFor('the exchange', () => kexes().length > before || undefined);
    assert.equal(kexes().at(-1), PQ);
  });

  test('Dropbear 2026 logs in; the key exchange it chose is recorded', async () => {
    const before = kexes().length;
    const result = await inDebianTesting(['env', 'DROPBEAR_PASSWORD=wonderland', 'dbclient', '-y', '-T', '-p',
      String(step().port), 'alice@127.0.0.1']);
    assert.equal(result.stdout, GOODBYE, result.stderr);
    await waitFor('the exchange', () => kexes().length > before || undefined);
    console.log(`Dropbear 2026 negotiated ${kexes().at(-1)}`);
    assert.equal(kexes().at(-1), PQ, 'Dropbear 2026 offers the hybrid, so it must be chosen');
  });

  test('OpenSSH 9.2, the machine\'s, still logs in, with Curve25519', async () => {
    const before = kexes().length;
    const result = await ssh(step().port, 'alice', 'wonderland', ['-T']);
    assert.equal(result.stdout, GOODBYE);
    await waitFor('the exchange', () => kexes().length > before || undefined);
    assert.match(kexes().at(-1)!, /^curve25519-sha256/);
  });

  test('ssh-audit 3.3 finds nothing to fail or warn about', async () => {
    const audit = await inDebianTesting(['ssh-audit', '-n', '-p', String(step().port), '127.0.0.1']);
    assert.deepEqual(auditFindings(audit.stdout), [], audit.stdout);
    assert.match(audit.stdout, /\(kex\) mlkem768x25519-sha256 /);
    assert.equal(count(step(), /^internal error/gm), 0);
  });
});
