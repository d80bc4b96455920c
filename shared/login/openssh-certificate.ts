// OpenSSH certificates (the format is OpenSSH's PROTOCOL.certkeys): reading one, and checking the signatures on
// it and made with it (step 15). The keys and signatures inside are read by shared/login/ssh-keys.ts.
import { verify, type KeyObject } from 'node:crypto';
import ssh2 from 'ssh2';
import { AddressBlocks } from '../core/address-blocks.ts';
import { curves, keyTypeOf, publicKey, readKey, Reader, signatureProblem } from './ssh-keys.ts';

const CERT = '-cert-v01@openssh.com';
/** The plain key type of each FIDO security key's type: how its key is written in its certificate. */
const SECURITY_KEY_TYPES: Record<string, string> = {
  'sk-ssh-ed25519@openssh.com': 'ssh-ed25519', 'sk-ecdsa-sha2-nistp256@openssh.com': 'ecdsa-sha2-nistp256',
};

/** What a certificate says, once read. */
export interface Certificate {
  /**
   * The certified key's type, such as `ssh-ed25519` (the certificate's is `ssh-ed25519-cert-v01@openssh.com`), or a
   * FIDO security key's, `sk-ssh-ed25519@openssh.com` (from `sk-ssh-ed25519-cert-v01@openssh.com`).
   */
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

/** Whether a key blob is an OpenSSH certificate. */
export const isCertificate = (blob: Buffer) => keyTypeOf(blob).endsWith(CERT);

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
    // A security key's type keeps its @openssh.com (PROTOCOL.u2f), and its key is followed by its application.
    const securityKey = type.startsWith('sk-');
    const keyType = securityKey ? `${type.slice(0, -CERT.length)}@openssh.com` : type.slice(0, -CERT.length);
    read.bytes(); // the nonce, which makes the signed text unpredictable
    const keyStart = read.offset;
    const key = readKey(securityKey ? SECURITY_KEY_TYPES[keyType] ?? keyType : keyType, read);
    if (securityKey) read.text(); // the application (`ssh:`), which the token signed for
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

/** Whether the CA's signature on the certificate holds: undefined if it does, else what is wrong. */
export function caSignatureProblem(cert: Certificate): string | undefined {
  if (isCertificate(cert.caKey)) return 'its CA key is a certificate';
  return signatureProblem(cert.caKey, cert.signed, cert.caSignature);
}

/**
 * Whether the login was signed by the certified key: `blob` and `signature` as ssh2 hands them to the
 * 'authentication' listener (with ssh2's patch, which reads a certificate's signature; ECDSA's in DER), and
 * `hashAlgo` its hash for RSA (SHA-1, undefined, is refused).
 */
export function signedByCertifiedKey(cert: Certificate, blob: Buffer, signature: Buffer, hashAlgo?: string): boolean {
  if (cert.keyType.startsWith('sk-')) {
    // A security key's signature is checked by ssh2 (the patch's part 019): for the application the key was made
    // for, touched unless the certificate carries the extension no-touch-required, and with the user verified
    // when it has the critical option verify-required (sshd's rules; the type of verify() is authorized-keys.ts's).
    const key = ssh2.utils.parseKey(cert.keyBlob);
    if (key instanceof Error) return false;
    return key.verify(blob, signature, undefined, { userPresence: !cert.extensions.has('no-touch-required'),
      userVerification: cert.criticalOptions.has('verify-required') }) === true;
  }
  const curve = curves[cert.keyType.replace(/^ecdsa-sha2-/, '')];
  const hash = cert.keyType === 'ssh-ed25519' ? null : cert.keyType === 'ssh-rsa' ? hashAlgo : curve?.hash;
  if (hash === undefined) return false;
  try {
    return verify(hash, blob, cert.key, signature);
  } catch {
    return false;
  }
}
