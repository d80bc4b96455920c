// Public keys and signatures in SSH's wire format (RFC 4253 section 6.6, RFC 5656, RFC 8709), read into
// node:crypto's KeyObjects and checked with it: Ed25519, ECDSA and RSA; nothing else is read. For OpenSSH
// certificates (shared/login/openssh-certificate.ts), which carry a key and a CA's signature.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

/** Reads SSH's wire types from a buffer; every read past the end throws. */
export class Reader {
  private at = 0;
  private readonly buffer: Buffer;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }
  get offset(): number {
    return this.at;
  }
  get done(): boolean {
    return this.at === this.buffer.length;
  }
  private take(length: number): Buffer {
    if (length > this.buffer.length - this.at) throw new Error('truncated');
    this.at += length;
    return this.buffer.subarray(this.at - length, this.at);
  }
  uint32 = () => this.take(4).readUInt32BE(0);
  uint64 = () => this.take(8).readBigUInt64BE(0);
  bytes = () => this.take(this.uint32());
  text = () => this.bytes().toString('utf8');
}

/** The type name at the start of a key blob (`ssh-ed25519`, `ssh-ed25519-cert-v01@openssh.com`, ...). */
export function keyTypeOf(blob: Buffer): string {
  try {
    return new Reader(blob).text();
  } catch {
    return '';
  }
}

const base64url = (bytes: Buffer) => bytes.toString('base64url');
export const unsigned = (mpint: Buffer) => (mpint[0] === 0 ? mpint.subarray(1) : mpint);
export const curves: Record<string, { crv: string; size: number; hash: string }> = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
};

/** Reads the fields of a public key of this type (after its type name) into a KeyObject. */
export function readKey(type: string, read: Reader): KeyObject {
  if (type === 'ssh-ed25519') {
    const x = read.bytes();
    if (x.length !== 32) throw new Error('an Ed25519 key of the wrong length');
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: base64url(x) }, format: 'jwk' });
  }
  if (type === 'ssh-rsa') {
    const e = unsigned(read.bytes());
    const n = unsigned(read.bytes());
    if (n.length < 128) throw new Error('an RSA key under 1024 bits');
    return createPublicKey({ key: { kty: 'RSA', n: base64url(n), e: base64url(e) }, format: 'jwk' });
  }
  const curve = curves[type.replace(/^ecdsa-sha2-/, '')];
  if (type.startsWith('ecdsa-sha2-') && curve) {
    if (read.text() !== type.replace(/^ecdsa-sha2-/, '')) throw new Error('an ECDSA key whose curve is not its type\'s');
    const point = read.bytes();
    if (point.length !== 1 + 2 * curve.size || point[0] !== 4) throw new Error('an ECDSA point that is not uncompressed');
    const [x, y] = [point.subarray(1, 1 + curve.size), point.subarray(1 + curve.size)];
    return createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: base64url(x), y: base64url(y) }, format: 'jwk' });
  }
  throw new Error(`a key type this server does not read (${type.slice(0, 60)})`);
}

/** A public key blob (as in `authorized_keys`) as a KeyObject; throws if it is not one of the types above. */
export function publicKey(blob: Buffer): KeyObject {
  const read = new Reader(blob);
  const key = readKey(read.text(), read);
  if (!read.done) throw new Error('bytes after the key');
  return key;
}

/**
 * Checks an SSH signature (`string algorithm, string signature`) of `data` by the key in `keyBlob`, a CA's (the
 * words of what is wrong say so). Returns undefined if it holds, else what is wrong: RSA with SHA-1 (`ssh-rsa`)
 * is refused, as OpenSSH refuses it.
 */
export function signatureProblem(keyBlob: Buffer, data: Buffer, signature: Buffer): string | undefined {
  let key: KeyObject;
  let algorithm: string;
  let bytes: Buffer;
  try {
    key = publicKey(keyBlob);
    const read = new Reader(signature);
    algorithm = read.text();
    bytes = read.bytes();
  } catch (err) {
    return `its CA key or signature is malformed (${(err as Error).message})`;
  }
  const keyType = keyTypeOf(keyBlob);
  if (algorithm === 'ssh-rsa' && keyType === 'ssh-rsa') return 'signed with RSA and SHA-1';
  const hashes: Record<string, string | null> = { 'ssh-ed25519': null, 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' };
  for (const [name, { hash }] of Object.entries(curves)) hashes[`ecdsa-sha2-${name}`] = hash;
  const rsa = keyType === 'ssh-rsa' && algorithm.startsWith('rsa-sha2-');
  if (!Object.hasOwn(hashes, algorithm) || (!rsa && algorithm !== keyType)) {
    return `signed with ${algorithm.slice(0, 60)}, which its CA key does not make`;
  }
  let holds = false;
  try {
    const curve = curves[keyType.replace(/^ecdsa-sha2-/, '')];
    if (keyType.startsWith('ecdsa-sha2-') && curve) {
      // r and s, each an mpint: as two numbers of the curve's size, end to end (IEEE P1363).
      const rs = new Reader(bytes);
      const [r, s] = [unsigned(rs.bytes()), unsigned(rs.bytes())];
      if (r.length > curve.size || s.length > curve.size) return 'its signature is malformed';
      const both = Buffer.alloc(2 * curve.size);
      r.copy(both, curve.size - r.length);
      s.copy(both, 2 * curve.size - s.length);
      holds = verify(curve.hash, data, { key, dsaEncoding: 'ieee-p1363' }, both);
    } else {
      holds = verify(hashes[algorithm]!, data, key, bytes);
    }
  } catch {
    holds = false;
  }
  return holds ? undefined : 'the CA\'s signature does not hold';
}
