// Step 15, user certificates: real certificates from ssh-keygen, presented by OpenSSH; then ssh2's client for the
// forged and broken ones no ssh-keygen makes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { fingerprint } from '../shared/core/fingerprint.ts';
import { count, ssh, sshOptions, temporaryDir, Terminal, useStep, waitFor } from './helpers.ts';
import { raw } from './hostile.ts';

const dir = temporaryDir();
const keygen = (...args: string[]) => execFileSync('ssh-keygen', ['-q', ...args], { stdio: 'pipe' });
for (const [name, type] of [['ca', 'ed25519'], ['rsa-ca', 'rsa'], ['ecdsa-ca', 'ecdsa'], ['other-ca', 'ed25519'],
  ['user', 'ed25519'], ['user-rsa', 'rsa'], ['user-ecdsa', 'ecdsa']]) {
  keygen('-t', type!, '-N', '', '-f', join(dir, name!));
}
const blobOf = (file: string) => Buffer.from(readFileSync(join(dir, file), 'utf8').split(' ')[1]!, 'base64');
writeFileSync(join(dir, 'trusted'), ['ca', 'rsa-ca', 'ecdsa-ca'].map((ca) => readFileSync(join(dir, `${ca}.pub`), 'utf8')).join(''));
writeFileSync(join(dir, 'revoked'), '# taken back\nserial 42\nid stolen-laptop\n');

/** Signs the user's key (`ssh-keygen -s CA -I ID ...`) and returns the certificate's file. */
function certificate(id: string, args: string[], ca = 'ca', user = 'user'): string {
  const pub = join(dir, `${id}.pub`);
  writeFileSync(pub, readFileSync(join(dir, `${user}.pub`)));
  keygen('-s', join(dir, ca), '-I', id, ...args, pub);
  return join(dir, `${id}-cert.pub`);
}

describe('step 15: certificates', { timeout: 180_000 }, () => {
  const step = useStep('15-certificates.ts', {
    env: { TRUSTED_USER_CA_KEYS: join(dir, 'trusted'), REVOKED_CERTIFICATES: join(dir, 'revoked') },
  });
  /** Logs in with the user's key and one certificate, by public key alone, and runs a command. */
  const login = (cert: string, command: string[] = ['whoami'], extra: string[] = [], user = 'user') => ssh(step().port, 'alice', '', [
    '-i', join(dir, user), '-o', `CertificateFile=${cert}`, '-o', 'IdentitiesOnly=yes',
    '-o', 'PreferredAuthentications=publickey', '-o', 'LogLevel=ERROR', ...extra, ...command]);
  const refused = { stdout: '', stderr: 'alice@localhost: Permission denied (publickey,password).\r\n', status: 255 };

  test('a certificate the CA signed for alice logs in, and the log names it, its serial and its CA', async () => {
    assert.deepEqual(await login(certificate('alice-laptop', ['-n', 'alice,carol', '-V', '+1h', '-z', '7'])),
      { stdout: 'alice\n', stderr: '', status: 0 });
    const ca = fingerprint(blobOf('ca.pub'));
    await waitFor('the log line', () => count(step(), new RegExp(
      `^\\S+ certificate "alice-laptop" \\(serial 7\\) of CA ${ca.replace(/[+/]/g, '\\$&')} for alice$`, 'gm')) || undefined);
    // RSA and ECDSA keys, and CAs (an RSA CA signs with SHA-2, ssh-keygen's default), are as good.
    for (const [ca, user] of [['rsa-ca', 'user-ecdsa'], ['ecdsa-ca', 'user-rsa'], ['rsa-ca', 'user-rsa'], ['ecdsa-ca', 'user-ecdsa']]) {
      const cert = certificate(`${ca}-${user}`, ['-n', 'alice'], ca, user);
      assert.deepEqual(await login(cert, ['whoami'], [], user), { stdout: 'alice\n', stderr: '', status: 0 }, `${ca} ${user}`);
    }
  });

  test('each certificate that must not log in is refused, and the log says why', async () => {
    const cases: [string, string, string][] = [
      [certificate('expired', ['-n', 'alice', '-V', '-2h:-1h']), 'expired', 'it has expired'],
      [certificate('too-early', ['-n', 'alice', '-V', '+1h:+2h']), 'too-early', 'it is not valid yet'],
      [certificate('for-bob', ['-n', 'bob']), 'for-bob', 'alice is not one of its principals'],
      [certificate('for-nobody', []), 'for-nobody', 'it names no principals'],
      [certificate('untrusted', ['-n', 'alice'], 'other-ca'), 'untrusted', `its CA ${fingerprint(blobOf('other-ca.pub'))} is not trusted`],
      [certificate('sha1', ['-n', 'alice', '-t', 'ssh-rsa'], 'rsa-ca'), 'sha1', 'signed with RSA and SHA-1'],
      [certificate('revoked-serial', ['-n', 'alice', '-z', '42']), 'revoked-serial', 'it is revoked (serial 42)'],
      [certificate('stolen-laptop', ['-n', 'alice']), 'stolen-laptop', 'it is revoked (key id "stolen-laptop")'],
      [certificate('unknown-option', ['-n', 'alice', '-O', 'critical:no-touch-required@example.com=yes']), 'unknown-option',
        'its critical option no-touch-required@example.com is not understood here'],
    ];
    for (const [cert, id, why] of cases) {
      assert.deepEqual(await login(cert), refused, id);
      const line = `certificate "${id}" refused for alice: ${why}`;
      await waitFor(line, () => step().output().split('\n').some((each) => each.endsWith(` ${line}`)) || undefined);
    }
  });

  test('source-address: from 127.0.0.1, as it says, and not from 127.0.0.2', async () => {
    const cert = certificate('from-here', ['-n', 'alice', '-O', 'source-address=127.0.0.1/32,::1']);
    assert.equal((await login(cert, ['whoami'], ['-b', '127.0.0.1'])).stdout, 'alice\n');
    assert.deepEqual(await login(cert, ['whoami'], ['-b', '127.0.0.2']), refused);
    await waitFor('the log line', () => count(step(), /^127\.0\.0\.2:\d+ certificate "from-here" refused for alice: source-address leaves out 127\.0\.0\.2$/gm) || undefined);
  });

  test('source-address: IPv6 blocks, even ::/0, leave out every IPv4 address (as OpenSSH matches them)', async () => {
    const cert = certificate('v6-only', ['-n', 'alice', '-O', 'source-address=2001:db8::/32,::/0']);
    assert.deepEqual(await login(cert, ['whoami'], ['-b', '127.0.0.1']), refused);
    await waitFor('the log line', () => count(step(), /^127\.0\.0\.1:\d+ certificate "v6-only" refused for alice: source-address leaves out 127\.0\.0\.1$/gm) || undefined);
  });

  test('force-command runs its command and nothing else; without permit-pty, no terminal', async () => {
    const forced = certificate('forced', ['-n', 'alice', '-O', 'force-command=echo only this']);
    assert.deepEqual(await login(forced, ['exit 3']), { stdout: 'only this\n', stderr: '', status: 0 });
    assert.deepEqual(await login(forced, ['-T']), { stdout: 'only this\n', stderr: '', status: 0 }); // a shell too
    const noPty = certificate('no-pty', ['-n', 'alice', '-O', 'no-pty']);
    // ssh -tt gives up when it gets no terminal (and an ssh in a terminal goes on without one).
    const result = await login(noPty, ['-tt', 'exit 3']);
    assert.deepEqual([result.stderr.split('\r\n')[0], result.status], ['PTY allocation request failed on channel 0', 255]);
    assert.deepEqual(await login(certificate('with-pty', ['-n', 'alice']), ['-tt', 'exit 3']), { stdout: '', stderr: '', status: 3 });
  });

  test('force-command in a terminal: its lines end with CR LF, so ssh\'s last line starts its own row', async () => {
    const forced = certificate('forced-terminal', ['-n', 'alice', '-O', 'force-command=echo only this']);
    const terminal = new Terminal(['ssh', ...sshOptions, '-p', String(step().port), '-i', join(dir, 'user'),
      '-o', `CertificateFile=${forced}`, '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey',
      'alice@localhost'], {});
    try {
      await waitFor('the end', () => terminal.exitStatus() !== undefined || undefined);
      // Before, with LF alone: "only this" and then "         Connection to localhost closed." on the next row.
      assert.deepEqual(terminal.screen(), ['only this', 'Connection to localhost closed.']);
      assert.equal(terminal.exitStatus(), 0);
    } finally {
      terminal.close();
    }
  });

  test('a key that is not a certificate is refused, with a log line', async () => {
    const result = await ssh(step().port, 'alice', '', ['-i', join(dir, 'user'), '-o', 'IdentitiesOnly=yes',
      '-o', 'PreferredAuthentications=publickey', '-o', 'LogLevel=ERROR', 'whoami']);
    assert.equal(result.status, 255);
    const line = `key ${fingerprint(blobOf('user.pub'))} refused for alice: not a certificate (this server takes certificates alone)`;
    await waitFor(line, () => step().output().includes(line) || undefined);
  });
});

describe('step 15 attacked', { timeout: 60_000 }, () => {
  const step = useStep('15-certificates.ts', { env: { TRUSTED_USER_CA_KEYS: join(dir, 'trusted') } });
  const good = Buffer.from(readFileSync(certificate('attacked', ['-n', 'alice']), 'utf8').split(' ')[1]!, 'base64');
  const privateKey = readFileSync(join(dir, 'user'));

  /** One publickey request through ssh2's client with `blob` as the certificate, signed (or not) by `signer`. */
  function offer(blob: Buffer, signer?: ssh2.ParsedKey): Promise<'logged in' | 'refused'> {
    const key = ssh2.utils.parseKey(privateKey) as ssh2.ParsedKey;
    key.getPublicSSH = () => blob; // what ssh2 sends as the key: here, anything
    return new Promise((resolve) => {
      const client = new ssh2.Client();
      client.on('ready', () => (client.end(), resolve('logged in')));
      client.on('error', () => resolve('refused'));
      client.connect({
        host: '127.0.0.1', port: step().port, username: 'alice',
        authHandler: () => raw(client).authPK('alice', key as never, 'ssh-ed25519-cert-v01@openssh.com',
          signer ? (data, done) => done(signer.sign(data)) : undefined as never),
      });
    });
  }

  test('a certificate cut short anywhere is refused as malformed, and the step goes on', async () => {
    for (const length of [10, 50, 100, good.length - 80, good.length - 1]) {
      assert.equal(await offer(good.subarray(0, length)), 'refused');
    }
    await waitFor('the log lines', () => (count(step(), /refused for alice: a malformed certificate: truncated$/gm) === 5) || undefined);
    assert.equal(await offer(good, ssh2.utils.parseKey(privateKey) as ssh2.ParsedKey), 'logged in');
  });

  test('a host certificate, and one changed after the CA signed it, are refused (OpenSSH would offer neither)', async () => {
    const host = Buffer.from(readFileSync(certificate('a-host', ['-h', '-n', 'alice']), 'utf8').split(' ')[1]!, 'base64');
    assert.equal(await offer(host), 'refused');
    await waitFor('the log line', () => count(step(), /certificate "a-host" refused for alice: it is a host certificate, not a user certificate$/gm) || undefined);
    const tampered = Buffer.from(good);
    tampered.write('bttacked', tampered.indexOf('attacked')); // one letter of the key id
    assert.equal(await offer(tampered), 'refused');
    await waitFor('the log line', () => count(step(), /certificate "bttacked" refused for alice: the CA's signature does not hold$/gm) || undefined);
  });

  test('a principal is a whole name: one principal "alice,carol" (signed here; ssh-keygen splits -n at commas) is not alice', async () => {
    const ca = ssh2.utils.parseKey(readFileSync(join(dir, 'ca'))) as ssh2.ParsedKey;
    const user = ssh2.utils.parseKey(privateKey) as ssh2.ParsedKey;
    const field = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0].map((_, i) => (bytes.length >>> (24 - 8 * i)) & 255)), bytes]);
    /** The good certificate with `principals` in place of its own, and the CA's signature made again over it. */
    const signedFor = (id: string, principals: string[]) => {
      const fields: Buffer[] = [];
      let at = 0;
      const take = (length: number) => (fields.push(good.subarray(at, at + length)), (at += length));
      const string = () => take(4 + good.readUInt32BE(at));
      string(); string(); string(); take(8 + 4); // its type, nonce, key; serial and type
      fields.push(field(Buffer.from(id)));
      at += 4 + good.readUInt32BE(at); // the key id, given
      at += 4 + good.readUInt32BE(at); // the principals, given
      fields.push(field(Buffer.concat(principals.map((name) => field(Buffer.from(name))))));
      take(16); string(); string(); string(); string(); // validity, critical options, extensions, reserved, CA key
      const signed = Buffer.concat(fields);
      return Buffer.concat([signed, field(Buffer.concat([field(Buffer.from('ssh-ed25519')), field(ca.sign(signed) as Buffer)]))]);
    };
    assert.equal(await offer(signedFor('re-signed', ['alice']), user), 'logged in', 'signed again here, with alice: taken');
    assert.equal(await offer(signedFor('comma', ['alice,carol']), user), 'refused');
    await waitFor('the log line', () => count(step(), /certificate "comma" refused for alice: alice is not one of its principals$/gm) || undefined);
  });

  test('a good certificate with a login signed by another key is refused', async () => {
    keygen('-t', 'ed25519', '-N', '', '-f', join(dir, 'thief'));
    const thief = ssh2.utils.parseKey(readFileSync(join(dir, 'thief'))) as ssh2.ParsedKey;
    assert.equal(await offer(good, thief), 'refused');
    await waitFor('the log line', () => count(step(), /certificate "attacked" refused for alice: the signature is not the certified key's \(or is RSA with SHA-1\)$/gm) || undefined);
  });
});
