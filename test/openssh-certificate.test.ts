// shared/login/openssh-certificate.ts and shared/login/certificate-authority.ts: certificates from ssh-keygen read field by
// field, and every broken one refused without a throw.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, mock, test } from 'node:test';
import { revoked, trustedCAs } from '../shared/login/certificate-authority.ts';
import { caSignatureProblem, isCertificate, parseCertificate, type Certificate } from '../shared/login/openssh-certificate.ts';
import { temporaryDir } from './helpers.ts';

const dir = temporaryDir();
const keygen = (...args: string[]) => execFileSync('ssh-keygen', ['-q', ...args], { stdio: 'pipe' });
const blobOf = (file: string) => Buffer.from(readFileSync(join(dir, file), 'utf8').split(' ')[1]!, 'base64');

/** Makes a key of `type` and a certificate for it, signed by a CA of `caType`; returns the certificate's blob. */
function certify(name: string, type: string[], caType: string[], args: string[]): Buffer {
  keygen(...caType, '-N', '', '-f', join(dir, `${name}-ca`));
  keygen(...type, '-N', '', '-f', join(dir, name));
  keygen('-s', join(dir, `${name}-ca`), ...args, join(dir, `${name}.pub`));
  return blobOf(`${name}-cert.pub`);
}

/** SSH's wire types, to build certificates no ssh-keygen makes. */
const string = (value: string | Buffer) => {
  const bytes = Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
};
const uint64 = (value: bigint) => {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(value);
  return bytes;
};
const uint32 = (value: number) => uint64(BigInt(value)).subarray(4);
const options = (...pairs: [string, string][]) =>
  string(Buffer.concat(pairs.flatMap(([name, value]) => [string(name), string(value ? string(value) : '')])));

/** An Ed25519 user certificate for `alice`, with the critical options given and a CA and signature of no worth. */
function built(critical: Buffer, tail = Buffer.alloc(0)): Buffer {
  return Buffer.concat([string('ssh-ed25519-cert-v01@openssh.com'), string('nonce'), string(Buffer.alloc(32, 1)),
    uint64(1n), uint32(1), string('built'), string(string('alice')), uint64(0n), uint64(2n ** 64n - 1n), critical,
    options(), string(''), string('ca'), string('signature'), tail]);
}

describe('OpenSSH certificates', () => {
  test('each field of certificates ssh-keygen signed, for Ed25519, RSA and ECDSA keys and CAs', () => {
    const kinds: [string, string[], string[]][] = [
      ['ed', ['-t', 'ed25519'], ['-t', 'ecdsa']], ['rsa', ['-t', 'rsa'], ['-t', 'ed25519']],
      ['ec', ['-t', 'ecdsa', '-b', '384'], ['-t', 'rsa']],
    ];
    for (const [name, type, caType] of kinds) {
      const blob = certify(name, type, caType, ['-I', `id ${name}`, '-n', 'alice,bob', '-z', '1234567890123',
        '-V', '20260101000000Z:20270101000000Z', '-O', 'clear', '-O', 'permit-pty', '-O', 'force-command=echo hi',
        '-O', 'source-address=192.0.2.0/24,::1']);
      assert.ok(isCertificate(blob));
      const cert = parseCertificate(blob) as Certificate;
      assert.ok(!(cert instanceof Error), String(cert));
      assert.equal(cert.keyId, `id ${name}`);
      assert.equal(cert.serial, 1234567890123n);
      assert.equal(cert.type, 'user');
      assert.deepEqual(cert.principals, ['alice', 'bob']);
      assert.equal(cert.validAfter, BigInt(Date.UTC(2026, 0, 1) / 1000));
      assert.equal(cert.validBefore, BigInt(Date.UTC(2027, 0, 1) / 1000));
      assert.deepEqual([...cert.criticalOptions], [['force-command', 'echo hi'], ['source-address', '192.0.2.0/24,::1']]);
      assert.deepEqual([...cert.extensions], [['permit-pty', '']]);
      assert.ok(cert.sourceAddress?.has('192.0.2.7') && !cert.sourceAddress.has('192.0.3.7'));
      assert.ok(cert.sourceAddress?.has('::1') && cert.sourceAddress.has('::ffff:192.0.2.7'));
      assert.deepEqual(cert.keyBlob, blobOf(`${name}.pub`));
      assert.deepEqual(cert.caKey, blobOf(`${name}-ca.pub`));
      assert.equal(caSignatureProblem(cert), undefined);
    }
    assert.ok(!isCertificate(blobOf('ed.pub')));
  });

  test('a certificate cut short anywhere, or with any byte changed, is refused, and nothing throws', () => {
    const blob = blobOf('ed-cert.pub');
    for (let length = 0; length < blob.length; length++) {
      const cert = parseCertificate(blob.subarray(0, length));
      assert.ok(cert instanceof Error, `cut at ${length}`);
    }
    for (let i = 0; i < 3000; i++) {
      const changed = Buffer.from(blob);
      const at = randomInt(changed.length);
      changed[at] = changed[at]! ^ (1 + randomInt(255));
      const cert = parseCertificate(changed);
      if (!(cert instanceof Error)) assert.ok(caSignatureProblem(cert), `byte ${at} changed, and the signature held`);
    }
  });

  test('what ssh-keygen would not make: options out of order or twice, a bad source-address, bytes after the end', () => {
    assert.ok(!(parseCertificate(built(options(['force-command', 'x'], ['source-address', '::1']))) instanceof Error));
    const cases: [Buffer, RegExp][] = [
      [built(options(['source-address', '::1'], ['force-command', 'x'])), /option force-command out of order or twice/],
      [built(options(['force-command', 'x'], ['force-command', 'y'])), /option force-command out of order or twice/],
      [built(options(['source-address', '10.0.0.0/33'])), /a source-address that is not address blocks \("10\.0\.0\.0\/33" is not an address block\)/],
      [built(options(['source-address', 'anywhere'])), /a source-address that is not address blocks/],
      [built(options(), Buffer.from([0])), /bytes after the signature/],
      [Buffer.concat([string('ssh-dss-cert-v01@openssh.com'), string('n'), string('p')]), /a key type this server does not read/],
      [Buffer.concat([string('ssh-ed25519-cert-v01@openssh.com'), string('n'), string('short')]), /Ed25519 key of the wrong length/],
    ];
    for (const [blob, message] of cases) {
      const cert = parseCertificate(blob);
      assert.ok(cert instanceof Error);
      assert.match(cert.message, message);
    }
    assert.match(String(parseCertificate(blobOf('ed.pub'))), /not a certificate/);
  });

  test('the trusted CA keys and the revocations: files read afresh, and lines that are not right skipped with a log line', (t) => {
    const logged = mock.method(console, 'log', () => {});
    t.after(() => logged.mock.restore());
    const trusted = join(dir, 'trusted');
    const revocations = join(dir, 'revoked');
    t.after(() => {
      delete process.env.TRUSTED_USER_CA_KEYS;
      delete process.env.REVOKED_CERTIFICATES;
    });
    process.env.TRUSTED_USER_CA_KEYS = trusted;
    process.env.REVOKED_CERTIFICATES = revocations;
    assert.deepEqual(trustedCAs(), []); // no file: nobody trusted
    writeFileSync(trusted, `# CAs\n${readFileSync(join(dir, 'ed-ca.pub'))}${readFileSync(join(dir, 'ed-cert.pub'))}not a key\n`);
    assert.deepEqual(trustedCAs(), [blobOf('ed-ca.pub')]);
    assert.deepEqual(logged.mock.calls.map((call) => String(call.arguments[0]).replace(dir, 'DIR')), [
      'DIR/trusted line 3: skipped, a certificate cannot be a CA key',
      'DIR/trusted line 4: skipped, not a public key (truncated)',
    ]);
    const cert = parseCertificate(blobOf('ed-cert.pub')) as Certificate;
    assert.equal(revoked(cert), undefined);
    writeFileSync(revocations, 'serial 1234567890123\n');
    assert.equal(revoked(cert), 'serial 1234567890123'); // read again, as it changed
    writeFileSync(revocations, 'id id ed\nserial x\nkey abc\n');
    assert.equal(revoked(cert), 'key id "id ed"');
    assert.deepEqual(logged.mock.calls.slice(2).map((call) => String(call.arguments[0]).replace(dir, 'DIR')), [
      'DIR/revoked line 2: skipped, a serial is a number',
      'DIR/revoked line 3: skipped, a line is "serial N" or "id KEY-ID"',
    ]);
  });
});
