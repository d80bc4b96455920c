// Time-based one-time codes (TOTP, RFC 6238), the six digits an authenticator app shows (step 16): each user's
// secret in a file of its own, `TOTP_DIR/USERNAME` (default keys/totp/USERNAME), as `npm run totp` writes it.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Seconds a code lasts, and the codes before and after the current one that are taken too (a clock off by one). */
export const PERIOD = 30;
const WINDOW = 1;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Base32 (RFC 4648), as secrets are written in `otpauth://` URIs: the bytes, or undefined if it is not base32. */
export function fromBase32(text: string): Buffer | undefined {
  const clean = text.toUpperCase().replace(/[\s=]/g, '');
  if (!/^[A-Z2-7]*$/.test(clean)) return undefined;
  let bits = '';
  for (const char of clean) bits += ALPHABET.indexOf(char).toString(2).padStart(5, '0');
  return Buffer.from((bits.match(/.{8}/g) ?? []).map((byte) => parseInt(byte, 2)));
}

/** Base32 without padding. */
export function toBase32(bytes: Buffer): string {
  const bits = [...bytes].map((byte) => byte.toString(2).padStart(8, '0')).join('');
  return (bits.match(/.{1,5}/g) ?? []).map((five) => ALPHABET[parseInt(five.padEnd(5, '0'), 2)]).join('');
}

/** The six-digit code of `secret` for time step `counter` (RFC 4226's HOTP with HMAC-SHA-1, as the apps use). */
export function code(secret: Buffer, counter: number): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', secret).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

/** The folder of the users' secret files. */
export function totpDir(): string {
  return process.env.TOTP_DIR || fileURLToPath(new URL('../../keys/totp/', import.meta.url));
}

/** A user's secret, or undefined if the user has none (no file, or not base32). */
function secretOf(username: string): Buffer | undefined {
  // The user name comes from the client and becomes a file name: nothing that could leave the folder.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(username)) return undefined;
  try {
    const secret = fromBase32(readFileSync(join(totpDir(), username), 'utf8'));
    return secret?.length ? secret : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Per user, the time step of the last code taken (a code is good once, and no earlier one after it), kept in
 * TOTP_DIR/.used/USERNAME so that a restart does not forget it. (No user name starts with a dot.)
 */
const usedFile = (username: string) => join(totpDir(), '.used', username);
function lastUsed(username: string): number {
  try {
    return Number(readFileSync(usedFile(username), 'utf8')) || -1;
  } catch {
    return -1;
  }
}
function setLastUsed(username: string, counter: number): void {
  mkdirSync(dirname(usedFile(username)), { recursive: true, mode: 0o700 });
  writeFileSync(usedFile(username), `${counter}\n`, { mode: 0o600 });
}

/**
 * Wrong codes, per user and from every address together: the limits on addresses and connections do not stop a
 * guesser who has the key and many addresses. The first FREE_FAILURES cost nothing; after each one more, every
 * code of the user's is refused, right or wrong, for FIRST_LOCK_S seconds, doubling up to LONGEST_LOCK_S. The
 * count forgets one wrong code every FORGET_ONE_S seconds, so that it ends by itself. A guesser is held to some
 * six codes an hour: an even chance of a right one takes years. Kept in TOTP_DIR/.failures/USERNAME (as `score
 * milliseconds`), so that a restart, or another worker, does not forget it.
 */
const FREE_FAILURES = 10;
const FIRST_LOCK_S = 30;
const LONGEST_LOCK_S = 3600;
const FORGET_ONE_S = 600;
const failuresFile = (username: string) => join(totpDir(), '.failures', username);

/** The user's wrong codes as counted at `now`, and until when their codes are refused (milliseconds). */
function failures(username: string, now: number): { score: number; lockedUntil: number } {
  let score = 0;
  let at = 0;
  try {
    [score, at] = readFileSync(failuresFile(username), 'utf8').split(' ').map(Number) as [number, number];
  } catch {
    // None lately.
  }
  if (!(score > 0 && at > 0)) return { score: 0, lockedUntil: 0 };
  const lock = score > FREE_FAILURES ? Math.min(FIRST_LOCK_S * 2 ** (score - FREE_FAILURES - 1), LONGEST_LOCK_S) : 0;
  return { score: Math.max(0, score - (now - at) / 1000 / FORGET_ONE_S), lockedUntil: at + lock * 1000 };
}

function countFailure(username: string, now: number): number {
  const score = failures(username, now).score + 1;
  mkdirSync(dirname(failuresFile(username)), { recursive: true, mode: 0o700 });
  writeFileSync(failuresFile(username), `${score} ${now}\n`, { mode: 0o600 });
  return failures(username, now).lockedUntil;
}

/**
 * Checks a code the user typed against their secret, at `now` (milliseconds): the current code, or the one before
 * or after. Returns undefined if it is good, else why not (for the log). A good code is taken once: after it,
 * that code and any earlier one are refused. Past FREE_FAILURES wrong codes lately, the user's codes are refused
 * for a while, unchecked (see above).
 */
export function codeRefusal(username: string, typed: string, now = Date.now()): string | undefined {
  const secret = secretOf(username);
  if (!secret) return `${username} has no secret (npm run totp -- ${username} makes one)`;
  const { lockedUntil } = failures(username, now);
  if (now < lockedUntil) {
    return `too many wrong codes for ${username} lately: codes refused for ${Math.ceil((lockedUntil - now) / 1000)} s more`;
  }
  const given = Buffer.from(typed.replace(/\s/g, '').padEnd(6).slice(0, 16));
  const current = Math.floor(now / 1000 / PERIOD);
  for (let counter = current - WINDOW; counter <= current + WINDOW; counter++) {
    const expected = Buffer.from(code(secret, counter).padEnd(given.length));
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) continue;
    if (counter <= lastUsed(username)) return 'a code used already';
    setLastUsed(username, counter);
    rmSync(failuresFile(username), { force: true });
    return undefined;
  }
  const locked = countFailure(username, now);
  return locked > now ? `a wrong code (codes for ${username} are now refused for ${Math.round((locked - now) / 1000)} s)` : 'a wrong code';
}
