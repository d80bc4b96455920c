// OpenSSH certificates (the format is OpenSSH's PROTOCOL.certkeys): reading one, and checking the signatures on
// it and made with it (step 15). Ed25519, ECDSA and RSA; nothing else is read.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AddressBlocks } from '../core/address-blocks.ts';

const CERT = '-cert-v01@openssh.com';

/** What a certificate says, once read. */
export interface Certificate {
  /** The certified key's type, such as `ssh-ed25519` (the certificate's is `ssh-ed25519-cert-v01@openssh.com`). */
  keyType: string;
  /** The certified key, which signs the login, and its blob as in an `authorized_keys` line (for fingerprints). */
  key: KeyObject;
  keyBlob: Buffer;
  serial: bigint;
  /** A user certificate, or a host certificate (a server's, not for logging in). */
  type: 'user' | 'host' | 'unknown';
  keyId: string;
  principals: string[];
  /** Seconds since 1970: valid from `validAfter`, up to but not including `validBefore`. */
  validAfter: bigint;
  validBefore: bigint;
  /** Critical options and extensions, each name with its value ('' for a flag). */
  criticalOptions: Map<string, string>;
  extensions: Map<string, string>;
  /** The addresses of `source-address`, if the certificate has it. */
  sourceAddress?: AddressBlocks;
  /** The CA's public key blob, its signature, and what it signed. */
  caKey: Buffer;
  caSignature: Buffer;
  signed: Buffer;
}

/** Reads SSH's wire types from a buffer; every read past the end throws. */
class Reader {
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

/** Whether a key blob is an OpenSSH certificate. */
export const isCertificate = (blob: Buffer) => keyTypeOf(blob).endsWith(CERT);

const base64url = (bytes: Buffer) => bytes.toString('base64url');
const unsigned = (mpint: Buffer) => (mpint[0] === 0 ? mpint.subarray(1) : mpint);
const curves: Record<string, { crv: string; size: number; hash: string }> = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
};

/** Reads the fields of a public key of this type (after its type name) into a KeyObject. */
function readKey(type: string, read: Reader): KeyObject {
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

/** A list of names with a string each (critical options, extensions), in order and each name once. */
function readOptions(bytes: Buffer): Map<string, string> {
  const read = new Reader(bytes);
  const options = new Map<string, string>();
  let last = '';
  while (!read.done) {
    const name = read.text();
    const data = read.bytes();
    if (name <= last && options.size) throw new Error(`option ${name.slice(0, 60)} out of order or twice`);
    // A value is a string inside the data; a flag has no data.
    options.set(name, data.length ? new Reader(data).text() : '');
    last = name;
  }
  return options;
}

/** `source-address`: address blocks separated by commas (`192.0.2.0/24,::1`). */
function readAddresses(list: string): AddressBlocks {
  try {
    return new AddressBlocks(list);
  } catch (err) {
    throw new Error(`a source-address that is not address blocks (${(err as Error).message})`);
  }
}

/**
 * Reads an OpenSSH certificate from its blob (what the client sends, or what the `-cert.pub` file holds in
 * base64). Returns an Error saying what is wrong if it is not a well-formed Ed25519, ECDSA or RSA certificate.
 * The signatures are not checked here: see `caSignatureProblem()` and `signedByCertifiedKey()`.
 */
export function parseCertificate(blob: Buffer): Certificate | Error {
  try {
    const read = new Reader(blob);
    const type = read.text();
    if (!type.endsWith(CERT)) return new Error('not a certificate (this server takes certificates alone)');
    const keyType = type.slice(0, -CERT.length);
    read.bytes(); // the nonce, which makes the signed text unpredictable
    const keyStart = read.offset;
    const key = readKey(keyType, read);
    const head = Buffer.alloc(4 + keyType.length);
    head.writeUInt32BE(keyType.length, 0);
    head.write(keyType, 4);
    const keyBlob = Buffer.concat([head, blob.subarray(keyStart, read.offset)]);
    const serial = read.uint64();
    const certType = ({ 1: 'user', 2: 'host' } as const)[read.uint32()] ?? 'unknown';
    const keyId = read.text();
    const principalList = new Reader(read.bytes());
    const principals: string[] = [];
    while (!principalList.done) principals.push(principalList.text());
    const validAfter = read.uint64();
    const validBefore = read.uint64();
    const criticalOptions = readOptions(read.bytes());
    const extensions = readOptions(read.bytes());
    read.bytes(); // reserved
    const caKey = read.bytes();
    const signed = blob.subarray(0, read.offset);
    const caSignature = read.bytes();
    if (!read.done) throw new Error('bytes after the signature');
    const from = criticalOptions.get('source-address');
    const sourceAddress = from === undefined ? undefined : readAddresses(from);
    return { keyType, key, keyBlob, serial, type: certType, keyId, principals, validAfter, validBefore,
      criticalOptions, extensions, sourceAddress, caKey, caSignature, signed };
  } catch (err) {
    return new Error(`a malformed certificate: ${(err as Error).message}`);
  }
}

/**
 * Checks an SSH signature (`string algorithm, string signature`) of `data` by the key in `keyBlob`. Returns
 * undefined if it holds, else what is wrong: RSA with SHA-1 (`ssh-rsa`) is refused, as OpenSSH refuses it.
 */
function signatureProblem(keyBlob: Buffer, data: Buffer, signature: Buffer): string | undefined {
  let key: KeyObject;
  let algorithm: string;
  let bytes: Buffer;
  try {
    if (isCertificate(keyBlob)) return 'its CA key is a certificate';
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

/** Whether the CA's signature on the certificate holds: undefined if it does, else what is wrong. */
export function caSignatureProblem(cert: Certificate): string | undefined {
  return signatureProblem(cert.caKey, cert.signed, cert.caSignature);
}

/**
 * Whether the login was signed by the certified key: `blob` and `signature` as ssh2 hands them to the
 * 'authentication' listener (with ssh2's patch, which reads a certificate's signature; ECDSA's in DER), and
 * `hashAlgo` its hash for RSA (SHA-1, undefined, is refused).
 */
export function signedByCertifiedKey(cert: Certificate, blob: Buffer, signature: Buffer, hashAlgo?: string): boolean {
  const curve = curves[cert.keyType.replace(/^ecdsa-sha2-/, '')];
  const hash = cert.keyType === 'ssh-ed25519' ? null : cert.keyType === 'ssh-rsa' ? hashAlgo : curve?.hash;
  if (hash === undefined) return false;
  try {
    return verify(hash, blob, cert.key, signature);
  } catch {
    return false;
  }
}
