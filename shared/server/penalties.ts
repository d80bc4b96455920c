// Slowing down an address that keeps failing to log in, as OpenSSH 9.8's PerSourcePenalties does. What counts is
// failed connections (a connection that ends with a failed login and none that worked, as sshd's `authfail`), not
// each wrong password: a person who runs a step again and again, typing wrong on purpose, never waits, and a
// program that guesses soon does.
import { limits } from '../core/options.ts';

const FREE_CONNECTIONS = 10; // failed connections an address may have had lately before it waits
const FORGIVEN_PER_MINUTE = 10; // how fast that count goes down again
const FIRST_DELAY_MS = 500;
const MAX_ADDRESSES = 10_000;
// Addresses whose connections keep ending without logging in (holding MAX_STARTUPS places, scanning, or
// guessing), as sshd's PerSourcePenalties treats them: each such connection adds to the address's penalty, and
// once the penalty has grown to PENALTY_MIN seconds, new connections from it are refused until it has run out.
const NOAUTH_SECONDS = 1;
const GRACE_EXCEEDED_SECONDS = 10;
const PENALTY_MIN_SECONDS = 15;

/** The amounts above, for shared/server/fleet-limits.ts, which keeps the same counts in a fleet's store. */
export const amounts = {
  freeConnections: FREE_CONNECTIONS, forgivenPerMinute: FORGIVEN_PER_MINUTE, firstDelayMs: FIRST_DELAY_MS,
  noauthSeconds: NOAUTH_SECONDS, graceExceededSeconds: GRACE_EXCEEDED_SECONDS, penaltyMinSeconds: PENALTY_MIN_SECONDS,
};

/** For each address: its count of recent failed connections, when that was last worked out, and whether logged. */
const records = new Map<string, { failed: number; at: number; logged: boolean }>();

/** The address's record, its count lowered by the time gone by since it was last worked out. */
function recordFor(ip: string, now: number) {
  const record = records.get(ip) ?? { failed: 0, at: now, logged: false };
  record.failed = Math.max(0, record.failed - ((now - record.at) / 60_000) * FORGIVEN_PER_MINUTE);
  record.at = now;
  if (record.failed === 0) record.logged = false;
  // Keep the map in order of last use, and bounded: the oldest address goes first.
  records.delete(ip);
  records.set(ip, record);
  if (records.size > MAX_ADDRESSES) records.delete(records.keys().next().value!);
  return record;
}

/** Notes that a connection from `ip` ended with at least one failed login, and without logging in. */
export function noteFailedConnection(ip: string): void {
  if (limits.authPenaltyMax === 0) return;
  recordFor(ip, Date.now()).failed += 1;
}

/**
 * How long to wait before answering a failed login from `ip`, in milliseconds: nothing while the address has had
 * at most ten failed connections lately (the count goes down by ten a minute), then 0.5 s, doubling with each
 * further one, up to `AUTH_PENALTY_MAX` seconds. `onFirstPenalty` is called when an address starts to wait.
 */
export function penaltyFor(ip: string, onFirstPenalty: (maxSeconds: number) => void): number {
  const max = limits.authPenaltyMax * 1000;
  if (max === 0) return 0;
  const record = recordFor(ip, Date.now());
  const beyond = Math.ceil(record.failed) - FREE_CONNECTIONS;
  if (beyond <= 0) return 0;
  if (!record.logged) onFirstPenalty(limits.authPenaltyMax);
  record.logged = true;
  return Math.min(max, FIRST_DELAY_MS * 2 ** (beyond - 1));
}

// The penalties of addresses whose connections keep ending without logging in (the amounts are above).
const sources = new Map<string, { until: number; enforced: boolean }>();

/**
 * Notes that a connection from `ip` ended without logging in (`graceExceeded`: it was still trying when
 * LOGIN_GRACE_TIME ran out) and returns the seconds the address is now refused for, or 0. The penalty never
 * exceeds `SOURCE_PENALTY_MAX` seconds.
 */
export function penalizeSource(ip: string, graceExceeded: boolean): number {
  const max = limits.sourcePenaltyMax * 1000;
  if (max === 0) return 0;
  const now = Date.now();
  const record = sources.get(ip) ?? { until: now, enforced: false };
  if (record.until <= now) Object.assign(record, { until: now, enforced: false });
  const added = (graceExceeded ? GRACE_EXCEEDED_SECONDS : NOAUTH_SECONDS) * 1000;
  record.until = Math.min(record.until + added, now + max);
  const wasEnforced = record.enforced;
  record.enforced ||= record.until - now >= Math.min(PENALTY_MIN_SECONDS * 1000, max);
  sources.delete(ip);
  sources.set(ip, record);
  if (sources.size > MAX_ADDRESSES) sources.delete(sources.keys().next().value!);
  return record.enforced && !wasEnforced ? Math.ceil((record.until - now) / 1000) : 0;
}

/** Whether new connections from `ip` are refused now, because of its penalty. */
export function sourceRefused(ip: string): boolean {
  const record = sources.get(ip);
  return record !== undefined && record.enforced && record.until > Date.now();
}

// Guessing spread over many addresses (each one below every per-address limit) shows only in the total: the log
// says so when the failures of the last minute, from all addresses together, reach 50, 500, 5000, ...
let windowStart = 0;
let windowFailures = 0;
const windowAddresses = new Set<string>();

/** Counts a failed login from `ip` towards the total; returns a line for the log when the total reaches a mark. */
export function countFailure(ip: string): string | undefined {
  const now = Date.now();
  if (now - windowStart > 60_000) {
    windowStart = now;
    windowFailures = 0;
    windowAddresses.clear();
  }
  windowFailures += 1;
  if (windowAddresses.size < MAX_ADDRESSES) windowAddresses.add(ip);
  if (!/^50+$/.test(String(windowFailures))) return undefined;
  return `${windowFailures} failed logins in the last minute, from ${windowAddresses.size} addresses`;
}
