// The password file, in the format of Twisted's FilePasswordDB: one `username:password` a line. A password may
// also be stored hashed, as `username:$scrypt$ln=16,r=8,p=1$SALT$HASH` (`npm run passwd -- USERNAME` writes one).
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { explain, fail, shown } from '../core/errors.ts';
import { log } from '../core/log.ts';

export interface Passwords {
  /**
   * Whether the file gives this user this password. A refusal is logged for `client` with its reason (a wrong
   * password, or no such user), as sshd logs `Failed password`. Never throws, and never logs the password.
   */
  check(username: string, password: string, client: { ip?: string; port?: number }): Promise<boolean>;
}

type Entry =
  | { kind: 'plain'; digest: Buffer }
  | { kind: 'scrypt'; params: ScryptOptions; salt: Buffer; hash: Buffer };

/** Where the password file is: `SSH_PASSWORDS`, else `keys/ssh-passwords`. */
export function passwordFilePath(): string {
  return process.env.SSH_PASSWORDS || fileURLToPath(new URL('../../keys/ssh-passwords', import.meta.url));
}

/**
 * Reads the password file named by `SSH_PASSWORDS` (default `keys/ssh-passwords`). Blank lines and lines
 * starting with `#` are skipped. A missing or malformed file stops the step, naming the file and the line.
 */
export function readPasswordFile(): Passwords {
  const path = passwordFilePath();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot read the password file ${shown(path)}: ${explain(err)} (set SSH_PASSWORDS to use another file)`);
  }

  const entries = new Map<string, Entry>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (line === '' || line.trimStart().startsWith('#')) return;
    const where = `${shown(path)} line ${index + 1}`;
    const colon = line.indexOf(':');
    if (colon === -1) fail(`${where}: expected username:password, found no ":"`);
    const username = line.slice(0, colon);
    const secret = line.slice(colon + 1);
    if (username === '') fail(`${where}: the username before ":" is empty`);
    if (secret === '') fail(`${where}: the password after ":" is empty`);
    if (entries.has(username)) fail(`${where}: user "${username}" is listed twice`);
    if (secret.startsWith('$scrypt$')) {
      entries.set(username, parseScrypt(secret) ?? fail(`${where}: not a valid $scrypt$ hash`));
    } else {
      entries.set(username, { kind: 'plain', digest: digest(secret) });
    }
  });

  const anyHashed = [...entries.values()].some((entry) => entry.kind === 'scrypt');
  const nobody: Entry | undefined = anyHashed
    ? { kind: 'scrypt', params: scryptOptions(LOG2_N, R, P), salt: randomBytes(16), hash: Buffer.alloc(32) }
    : undefined;
  return {
    async check(username, password, client) {
      // Every attempt costs the same work, so the time taken does not tell users apart: an unknown user is
      // checked against a made-up entry, and when the file holds any hash, a plain entry pays for one scrypt too.
      const entry = entries.get(username) ?? nobody ?? { kind: 'plain', digest: digest('') };
      const [same] = await Promise.all([
        matches(entry, password).catch(() => false),
        entry.kind === 'plain' && nobody ? matches(nobody, password).catch(() => false) : false,
      ]);
      if (same && entries.has(username)) return true;
      log(client, `password refused for ${username}: ${entries.has(username) ? 'wrong password' : 'no such user'}`);
      return false;
    },
  };
}

/** Compares fixed-size values with timingSafeEqual: no early exit at the first difference, no length leak. */
async function matches(entry: Entry, password: string): Promise<boolean> {
  if (entry.kind === 'plain') return timingSafeEqual(digest(password), entry.digest);
  const derived = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, entry.salt, entry.hash.length, entry.params, (err, key) => (err ? reject(err) : resolve(key))));
  return timingSafeEqual(derived, entry.hash);
}

function digest(password: string): Buffer {
  return createHash('sha256').update(password, 'utf8').digest();
}

/** The cost of a new hash: N = 2^16, r = 8, p = 1, which takes 64 MiB of memory for each check. */
const LOG2_N = 16;
const R = 8;
const P = 1;

function scryptOptions(log2N: number, r: number, p: number): ScryptOptions {
  return { N: 2 ** log2N, r, p, maxmem: 2 * 128 * 2 ** log2N * r * p };
}

/** `$scrypt$ln=16,r=8,p=1$SALT$HASH`, with SALT and HASH in unpadded base64. */
function parseScrypt(text: string): Entry | undefined {
  const match = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{16,})$/.exec(text);
  if (!match) return undefined;
  const [log2N, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (log2N < 10 || log2N > 22 || r < 1 || p < 1) return undefined;
  return {
    kind: 'scrypt',
    params: scryptOptions(log2N, r, p),
    salt: Buffer.from(match[4]!, 'base64'),
    hash: Buffer.from(match[5]!, 'base64'),
  };
}

/** A new `$scrypt$...` entry for a password, with a random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, 32, scryptOptions(LOG2_N, R, P), (err, key) => (err ? reject(err) : resolve(key))));
  const b64 = (data: Buffer) => data.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${LOG2_N},r=${R},p=${P}$${b64(salt)}$${b64(hash)}`;
}
