// The server's host keys: made once, on the first run of any step, then reused so that clients keep trusting them.
import cluster from 'node:cluster';
import { createPublicKey } from 'node:crypto';
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import type { EncryptedPrivateKey, ParsedKey } from 'ssh2';
import { fingerprint } from '../core/fingerprint.ts';
import { explain, fail, shown } from '../core/errors.ts';
import { decodeOnce } from '../core/key-objects.ts';

const { utils } = ssh2;

const COMMENT = 'conch-steps';

/** A host key for `new Server({ hostKeys })`, with its host certificate when it has one (the ssh2 patch's part 018). */
export type HostKey = EncryptedPrivateKey & { certificate?: string };

/** The host key files, Ed25519 and RSA, in `HOST_KEYS_DIR` (default `keys/`). */
export function hostKeyFiles(): { ed25519: string; rsa: string } {
  const dir = process.env.HOST_KEYS_DIR || fileURLToPath(new URL('../../keys/', import.meta.url));
  return { ed25519: join(dir, 'ssh_host_ed25519_key'), rsa: join(dir, 'ssh_host_rsa_key') };
}

/**
 * Returns the host private keys, Ed25519 and RSA (then the next ones, if any), ready for `new Server({ hostKeys })`,
 * and prints the fingerprint of each as `ssh-keygen -lf` does (once: not in a cluster's workers). The keys live in
 * `HOST_KEYS_DIR` (default `keys/`); the first run makes them. A host certificate beside a key
 * (`ssh_host_ed25519_key-cert.pub`, as `npm run host-cert` makes it) is served with it, so that clients that trust
 * its CA need no copy of the key.
 */
export function readHostKeys(): HostKey[] {
  const files = hostKeyFiles();
  refuseIfWorldWritable(dirname(files.ed25519));
  const keys = [readOrCreate(files.ed25519, 'ed25519'), readOrCreate(files.rsa, 'rsa')];
  for (const { key } of keys) {
    if (!cluster.isWorker) console.log(`host key: ${describe(key)}`); // step 17's workers: the primary said it
  }
  const [ed25519, rsa] = keys.map(({ key }) => key) as [ParsedKey, ParsedKey];
  const [edCertificate, rsaCertificate] = [readCertificate(files.ed25519, ed25519), readCertificate(files.rsa, rsa)];
  const withCertificate = (certificate: string | undefined) => (certificate ? { certificate } : {});
  // ssh2 1.17 offers every RSA host key under the SHA-1 signature name `ssh-rsa` too, whatever the algorithm
  // list says (lib/server.js), and an audit fails that. Handing it the RSA key once per SHA-2 name makes it
  // offer just those: ssh2 files a host key under its `type`, and signs with the hash the name asks for.
  const signingAs = (name: string) => ({ key: Object.create(rsa, { type: { value: name } }) as ParsedKey,
    ...withCertificate(rsaCertificate) });
  return [{ key: ed25519, ...withCertificate(edCertificate) }, signingAs('rsa-sha2-512'), signingAs('rsa-sha2-256'),
    ...nextKeys(files)];
}

/**
 * The keys a server is moving to, if any: `ssh_host_ed25519_key.next` and `ssh_host_rsa_key.next` beside the keys.
 * Each is told to clients after they log in, with the others (the ssh2 patch's part 027, hostkeys): a client with
 * `UpdateHostKeys` adds it to its known_hosts. It signs nothing yet: the key of its type in use still does.
 */
function nextKeys(files: { ed25519: string; rsa: string }): HostKey[] {
  const keys: HostKey[] = [];
  for (const path of [files.ed25519, files.rsa].map((file) => `${file}.next`)) {
    const text = readKeyFile(path);
    if (text === undefined) continue;
    const key = utils.parseKey(text);
    if (key instanceof Error || !key.isPrivateKey() || !['ssh-ed25519', 'ssh-rsa'].includes(key.type)) {
      const why = key instanceof Error ? key.message : key.isPrivateKey() ? `it is ${key.type}` : 'it holds no private key';
      fail(`next host key ${shown(path)} is not a usable Ed25519 or RSA private key (${why}); move it away`);
    }
    if (!cluster.isWorker) console.log(`next host key: ${describe(key)}, told to clients, not yet signing`);
    // An RSA key under a SHA-2 name, as above: one the server already has, so ssh2 keeps it only to tell and prove.
    const decoded = decodeOnce(key);
    keys.push({ key: key.type === 'ssh-rsa' ? Object.create(decoded, { type: { value: 'rsa-sha2-512' } }) : decoded });
  }
  return keys;
}

/** The names a host certificate is for, and when it is valid: from `validAfter` up to `validBefore` (seconds). */
export function certificateTerms(line: string): { names: string[]; validAfter: bigint; validBefore: bigint } {
  const blob = Buffer.from(line.split(' ')[1] ?? '', 'base64');
  let at = 0;
  const string = () => {
    const length = blob.readUInt32BE(at);
    if (at + 4 + length > blob.length) throw new RangeError('the certificate is cut short');
    at += 4 + length;
    return blob.subarray(at - length, at);
  };
  // Its type, a nonce, the key (one field for Ed25519, two for RSA and ECDSA), serial, type and key ID, then its names.
  const fields = string().toString().startsWith('ssh-ed25519') ? 1 : 2;
  for (let i = 0; i < 1 + fields; i++) string();
  at += 12;
  string();
  const packed = string();
  const names: string[] = [];
  for (let i = 0; i < packed.length; i += 4 + packed.readUInt32BE(i)) {
    names.push(packed.subarray(i + 4, i + 4 + packed.readUInt32BE(i)).toString());
  }
  return { names, validAfter: blob.readBigUInt64BE(at), validBefore: blob.readBigUInt64BE(at + 8) };
}

/** A certificate's time as a date, or "for ever" for the largest (ssh-keygen's default: no end). */
export const certificateTime = (seconds: bigint) =>
  (seconds >= 2n ** 63n ? 'for ever' : new Date(Number(seconds) * 1000).toISOString().replace('.000Z', 'Z'));

/**
 * The host certificate beside the key file (`KEY-cert.pub`), or undefined if there is none. One that is not the
 * key's (the key was made again since it was signed) stops the step with a line that says what to do: ssh2 would
 * refuse it as the server is made, with a stack trace. One that has expired, is not valid yet or names no host is
 * not served, and a line says why: OpenSSH would refuse it, and take the key alone only if it knows the key. The
 * names it is for, and its end, are printed: a client that connects by another name refuses it too.
 */
function readCertificate(keyPath: string, key: ParsedKey): string | undefined {
  const path = `${keyPath}-cert.pub`;
  let line: string;
  try {
    line = readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return fail(`cannot read host certificate ${shown(path)}: ${explain(err)}`);
  }
  try {
    new ssh2.Server({ hostKeys: [{ key, certificate: line } as EncryptedPrivateKey] }); // checked, never listens
  } catch (err) {
    fail(`host certificate ${shown(path)} cannot be served: ${(err as Error).message}; sign the key again `
      + '(npm run host-cert -- CA_KEY), or move the certificate away');
  }
  let terms: ReturnType<typeof certificateTerms>;
  try {
    terms = certificateTerms(line);
  } catch (err) {
    return fail(`host certificate ${shown(path)} cannot be read: ${(err as Error).message}; sign the key again `
      + '(npm run host-cert -- CA_KEY), or move the certificate away');
  }
  const { names, validAfter, validBefore } = terms;
  const now = BigInt(Math.floor(Date.now() / 1000));
  const why = now >= validBefore ? `it expired at ${certificateTime(validBefore)}`
    : now < validAfter ? `it is not valid before ${certificateTime(validAfter)}`
      : names.length === 0 ? 'it names no host' : undefined;
  if (why) {
    if (!cluster.isWorker) console.log(`host certificate ${shown(path)} not served: ${why}; sign the key again (npm run host-cert -- CA_KEY)`);
    return undefined;
  }
  if (!cluster.isWorker) {
    const until = validBefore >= 2n ** 63n ? 'valid for ever' : `valid until ${certificateTime(validBefore)}`;
    console.log(`host certificate: ${line.split(' ')[0]} (${shown(path)}), for ${names.join(', ')}, ${until}`);
  }
  return line;
}

/** Reads one private key file, or makes it if it is missing; writes the matching `.pub` file beside it. */
function readOrCreate(path: string, type: 'ed25519' | 'rsa') {
  const text = readKeyFile(path) ?? create(path, type);
  const key = utils.parseKey(text);
  if (key instanceof Error || !key.isPrivateKey()) {
    const why = key instanceof Error ? key.message : 'it holds no private key';
    fail(`host key ${shown(path)} is not a usable private key (${why}); move it away and a new one will be made`);
  }
  const line = [key.type, key.getPublicSSH().toString('base64'), key.comment].filter(Boolean).join(' ');
  writePublicKey(`${path}.pub`, `${line}\n`);
  // The server signs with its host key once for every connection: decoded once here, not at every signature.
  return { key: decodeOnce(key) };
}

/** Stops the step if every user may write to the folder: anyone could plant a key, or a link, there. */
function refuseIfWorldWritable(dir: string): void {
  let mode: number;
  try {
    mode = statSync(dir).mode;
  } catch {
    return; // not there yet: it will be made, as ours
  }
  if (mode & 0o002) {
    fail(`the host key folder ${shown(dir)} can be written by every user, who could plant a key or a link in it; `
      + `make it yours: chmod o-w ${shown(dir)}`);
  }
}

/**
 * Writes a new key under a name of its own, then links it into place. The link fails if another step, started at
 * the same moment, got there first; either way every step then reads the one key that won.
 */
function create(path: string, type: 'ed25519' | 'rsa'): string {
  const temporary = `${path}.${process.pid}.new`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    // 'wx': a new file or nothing, never through a link someone left under that name.
    writeFileSync(temporary, newHostKey(type), { mode: 0o600, flag: 'wx' });
    linkSync(temporary, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') fail(`cannot create host key ${shown(path)}: ${explain(err)}`);
  } finally {
    rmSync(temporary, { force: true });
  }
  return readKeyFile(path) ?? fail(`host key ${shown(path)} vanished as it was made`);
}

/**
 * A new private key in OpenSSH's format: Ed25519, or RSA of 3072 bits. ssh2 1.17 writes a malformed Ed25519
 * key when the public key begins with a zero byte (it drops that byte), about one key in 256: those are made
 * again, so that every key is one ssh2 reads back.
 */
export function newHostKey(type: 'ed25519' | 'rsa'): string {
  for (let attempt = 0; attempt < 20; attempt++) {
    const { private: key } = type === 'rsa'
      ? utils.generateKeyPairSync('rsa', { bits: 3072, comment: COMMENT })
      : utils.generateKeyPairSync('ed25519', { comment: COMMENT });
    if (!(utils.parseKey(key) instanceof Error)) return key;
  }
  return fail(`cannot make an ${type} host key that ssh2 reads back`);
}

/** A private key's text, or undefined if there is no such file. Refused if other users may read or write it. */
function readKeyFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return fail(`cannot read host key ${shown(path)}: ${explain(err)}`);
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (mode & 0o077) {
      fail(`host key ${shown(path)} can be read or changed by other users (mode ${mode.toString(8).padStart(4, '0')}), `
        + `as sshd refuses too; make it yours alone: chmod 600 ${shown(path)}`);
    }
    return readFileSync(fd, 'utf8');
  } catch (err) {
    return fail(`cannot read host key ${shown(path)}: ${explain(err)}`);
  } finally {
    closeSync(fd);
  }
}

/** The public half, for the reader's `ssh-keygen -lf`. Rewritten (atomically) only when it is missing or stale. */
function writePublicKey(path: string, line: string): void {
  try {
    if (readFileSync(path, 'utf8') === line) return;
  } catch {
    // missing or unreadable: write it
  }
  const temporary = `${path}.${process.pid}.new`;
  try {
    writeFileSync(temporary, line, { mode: 0o644, flag: 'wx' });
    renameSync(temporary, path);
  } catch (err) {
    fail(`cannot write ${shown(path)}: ${explain(err)}`);
  }
}

/** `256 SHA256:... comment (ED25519)`: the line `ssh-keygen -lf` prints for the key. */
function describe(key: ParsedKey): string {
  const hash = fingerprint(key.getPublicSSH());
  const details = createPublicKey(key.getPublicPEM()).asymmetricKeyDetails;
  const bits = key.type === 'ssh-ed25519' ? 256 : details?.modulusLength ?? 0;
  const name = key.type === 'ssh-ed25519' ? 'ED25519' : key.type === 'ssh-rsa' ? 'RSA' : key.type;
  return `${bits} ${hash} ${key.comment || 'no comment'} (${name})`;
}
