// The files of a certificate authority that the server reads (step 15): the CA keys it trusts to sign users'
// keys, and the certificates it no longer takes. Both are read afresh at each login, so an edit counts at once.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { shown } from '../core/errors.ts';
import { isCertificate, type Certificate } from './openssh-certificate.ts';
import { publicKey } from './ssh-keys.ts';

/** Each file's text when it was last read, and what was read from it. */
const read = new Map<string, { text: string; items: unknown }>();

/** The lines of a file worth reading (not blank, not `#`), each with its number; a missing file has none. */
function lines(path: string): { text: string; lines: { line: string; number: number }[] } {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // No file: nothing trusted, nothing revoked.
  }
  const found = text.split('\n').map((raw, index) => ({ line: raw.trim(), number: index + 1 }))
    .filter(({ line }) => line !== '' && !line.startsWith('#'));
  return { text, lines: found };
}

/** Reads a file with `parse` (which returns what a line holds, or why it is skipped), again only once it changes. */
function cached<T>(path: string, parse: (line: string) => T | string): T[] {
  const { text, lines: found } = lines(path);
  const last = read.get(path);
  if (last?.text === text) return last.items as T[];
  const items: T[] = [];
  for (const { line, number } of found) {
    const item = parse(line);
    if (typeof item === 'string') console.log(`${shown(path)} line ${number}: skipped, ${item}`);
    else items.push(item);
  }
  read.set(path, { text, items });
  return items;
}

const inKeys = (name: string) => fileURLToPath(new URL(`../../keys/${name}`, import.meta.url));

/**
 * The CA public keys trusted to sign users' keys, as blobs: `TRUSTED_USER_CA_KEYS` (default
 * `keys/trusted_user_ca_keys`), one public key a line as in `authorized_keys` (sshd's `TrustedUserCAKeys`).
 * A line that is not an Ed25519, ECDSA or RSA public key, or that is a certificate, is skipped with a log line.
 */
export function trustedCAs(): Buffer[] {
  return cached(process.env.TRUSTED_USER_CA_KEYS || inKeys('trusted_user_ca_keys'), (line) => {
    const blob = Buffer.from(line.split(/\s+/)[1] ?? '', 'base64');
    if (isCertificate(blob)) return 'a certificate cannot be a CA key';
    try {
      publicKey(blob);
      return blob;
    } catch (err) {
      return `not a public key (${(err as Error).message})`;
    }
  });
}

/**
 * Why a certificate has been revoked, or undefined: `REVOKED_CERTIFICATES` (default `keys/revoked_certificates`)
 * holds one line a certificate, `serial N` or `id KEY-ID` (a key id as `ssh-keygen -I` gave it).
 */
export function revoked(cert: Certificate): string | undefined {
  const list = cached(process.env.REVOKED_CERTIFICATES || inKeys('revoked_certificates'), (line) => {
    const [, kind, value] = /^(serial|id)\s+(.+)$/.exec(line) ?? [];
    if (kind === 'serial' && !/^\d+$/.test(value!)) return 'a serial is a number';
    return kind && value ? { kind, value } : 'a line is "serial N" or "id KEY-ID"';
  });
  if (list.some(({ kind, value }) => kind === 'serial' && BigInt(value) === cert.serial)) return `serial ${cert.serial}`;
  if (list.some(({ kind, value }) => kind === 'id' && value === cert.keyId)) return `key id "${cert.keyId}"`;
  return undefined;
}
