// What the server offers on the wire, what an audit makes of it, and which clients can still connect.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { auditFindings, debianTesting, debianTestingHome, inDebianTesting, sshEnv, sshOptions, temporaryDir, useStep, waitFor } from './helpers.ts';

const GOODBYE = 'This session is very simple. Goodbye!\r\n';

/** Reads the server's KEXINIT (RFC 4253, 7.1) off a fresh connection: its ten name-lists, by name. */
function serverOffer(port: number): Promise<Record<string, string[]>> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => socket.write('SSH-2.0-conch-steps-test\r\n'));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      const start = data.indexOf('\r\n') + 2;
      if (start < 2 || data.length < start + 4) return;
      const length = data.readUInt32BE(start);
      if (data.length < start + 4 + length) return;
      socket.destroy();
      let at = start + 4 + 1 + 1 + 16; // length, padding length, message number 20, cookie
      const names = ['kex', 'hostKey', 'cipherCS', 'cipherSC', 'macCS', 'macSC', 'compCS', 'compSC'];
      const offer: Record<string, string[]> = {};
      for (const name of names) {
        const size = data.readUInt32BE(at);
        offer[name] = data.subarray(at + 4, at + 4 + size).toString().split(',');
        at += 4 + size;
      }
      resolve(offer);
    });
  });
}

describe('algorithms', { timeout: 60_000 }, () => {
  const step = useStep('03-trivial-channel.ts', { preload: ['./test/spy-kex.ts'] });
  /** The key exchange of the last connection (test/spy-kex.ts prints each). */
  const kexes = () => [...step().output().matchAll(/^key exchange \d+ (\S+)$/gm)].map((m) => m[1]!);
  /** Waits for the key exchange of a connection after the first `before`, and returns it. */
  const kexAfter = (before: number) => waitFor('the key exchange', () => kexes()[before]);

  test('the server offers only what the policy allows, and strict key exchange', async () => {
    const offer = await serverOffer(step().port);
    const allowed = {
      // No finite-field Diffie-Hellman (its cost falls on the server) and no compression (unbounded inflation).
      kex: ['mlkem768x25519-sha256', 'curve25519-sha256', 'curve25519-sha256@libssh.org', 'kex-strict-s-v00@openssh.com'],
      hostKey: ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256'],
      cipher: ['chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com', 'aes128-gcm@openssh.com', 'aes256-ctr',
        'aes192-ctr', 'aes128-ctr'],
      mac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com'],
      comp: ['none'],
    };
    const outside = (list: string[], policy: string[]) => list.filter((name) => !policy.includes(name));
    assert.deepEqual(outside(offer.kex!, allowed.kex), []);
    assert.ok(offer.kex!.includes('kex-strict-s-v00@openssh.com'), 'strict key exchange (Terrapin) is on');
    assert.deepEqual(offer.hostKey, ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256'], 'no ssh-rsa (SHA-1)');
    for (const key of ['cipherCS', 'cipherSC']) assert.deepEqual(outside(offer[key]!, allowed.cipher), [], key);
    for (const key of ['macCS', 'macSC']) assert.deepEqual(outside(offer[key]!, allowed.mac), [], key);
    for (const key of ['compCS', 'compSC']) assert.deepEqual(outside(offer[key]!, allowed.comp), [], key);
  });

  test('ssh-audit finds nothing to fail or warn about', () => {
    const audit = spawnSync('ssh-audit', ['-n', '-p', String(step().port), '127.0.0.1'], { encoding: 'utf8' });
    assert.equal(audit.error, undefined, 'ssh-audit is installed (Debian: apt-get install ssh-audit)');
    const findings = auditFindings(audit.stdout);
    // Debian 12's ssh-audit (2.5.0) is older than strict key exchange (the Terrapin fix of December 2023) and
    // than ML-KEM, and calls both unknown algorithms; those are the findings allowed. (clients.test.ts runs a
    // current ssh-audit, which allows none.)
    const known = ['(kex) kex-strict-s-v00@openssh.com: [warn] unknown algorithm',
      '(kex) mlkem768x25519-sha256: [warn] unknown algorithm'];
    assert.deepEqual(findings.filter((finding) => !known.includes(finding)), [], audit.stdout);
    assert.ok(audit.stdout.includes('(key) rsa-sha2-256 (3072-bit)'), 'the audit saw the RSA host key');
  });

  test('PuTTY 0.78 (the machine\'s) connects', async () => {
    const fingerprint = spawnSync('ssh-keygen', ['-lf', '-'], {
      input: spawnSync('ssh-keyscan', ['-p', String(step().port), '-t', 'ed25519', '127.0.0.1'], { encoding: 'utf8' }).stdout,
      encoding: 'utf8',
    }).stdout.split(' ')[1]!;
    const before = kexes().length;
    const plink = spawnSync('plink', ['-batch', '-ssh', '-P', String(step().port), '-pw', 'wonderland',
      '-hostkey', fingerprint, 'alice@127.0.0.1'], { encoding: 'utf8', input: '', timeout: 20_000 });
    assert.equal(plink.error, undefined, 'plink is installed (Debian: apt-get install putty-tools)');
    assert.equal(plink.stdout, GOODBYE, plink.stderr);
    assert.match(await kexAfter(before), /^curve25519-sha256/, 'PuTTY 0.78 knows no ML-KEM: Curve25519');
  });

  test('Dropbear 2022 (the machine\'s) connects', async () => {
    const before = kexes().length;
    const dbclient = spawnSync('dbclient', ['-y', '-T', '-p', String(step().port), 'alice@127.0.0.1'], {
      encoding: 'utf8', input: '', timeout: 20_000, env: { ...process.env, DROPBEAR_PASSWORD: 'wonderland' },
    });
    assert.equal(dbclient.error, undefined, 'dbclient is installed (Debian: apt-get install dropbear-bin)');
    assert.equal(dbclient.stdout, GOODBYE, dbclient.stderr);
    assert.match(await kexAfter(before), /^curve25519-sha256/, 'Dropbear 2022 knows no ML-KEM: Curve25519');
  });
});

describe('rekeying, as OpenSSH 10.3 and later require of a peer', { timeout: 180_000 }, () => {
  const step = useStep('08-exec-requests.ts');

  // OpenSSH 10.3 drops a peer that cannot exchange keys again. RekeyLimit=1M: a new exchange after every MiB, some
  // hundred in all. The bytes go from a file and to one, as a reader's `ssh host cat < in > out` would.
  test('100 MB through cat with RekeyLimit=1M, OpenSSH 9.2 and 10.6: every byte comes back, in order', async () => {
    for (const todays of [false, true]) {
      const home = todays ? debianTestingHome() : temporaryDir();
      const inside = todays ? home.slice(debianTesting().length) : home;
      writeFileSync(join(home, 'in'), randomBytes(75 * 1024 * 1024).toString('base64')); // 100 MB of text
      const line = `ssh ${sshOptions.join(' ')} -v -o RekeyLimit=1M -p ${step().port} alice@localhost cat < ${inside}/in > ${inside}/out`;
      const result = todays ? await inDebianTesting(['sh', '-c', line], 'wonderland')
        : spawnSync('sh', ['-c', line], { env: { ...process.env, ...sshEnv('wonderland') }, encoding: 'utf8', timeout: 60_000 });
      assert.equal(result.status, 0, result.stderr.slice(-2000));
      assert.ok(readFileSync(join(home, 'in')).equals(readFileSync(join(home, 'out'))), 'the same bytes');
      const exchanges = result.stderr.match(/SSH2_MSG_KEXINIT sent/g)?.length ?? 0;
      assert.ok(exchanges >= 50, `${exchanges} key exchanges`);
      rmSync(home, { recursive: true });
    }
  });
});
