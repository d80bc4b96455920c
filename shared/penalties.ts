// Slowing down an address that keeps failing to log in, as OpenSSH 9.8's PerSourcePenalties does.
import { limits } from './options.ts';

const FREE_FAILURES = 3; // one ssh run's worth of typos
const FIRST_DELAY_MS = 500;
const FORGET_AFTER_MS = 10 * 60_000;
const MAX_ADDRESSES = 10_000;

interface Record {
  failures: number;
  last: number;
}

const records = new Map<string, Record>();

/**
 * Notes a failed login from `ip` and returns how long to wait before answering it, in milliseconds: nothing
 * for the first few failures, then 0.5 s, doubling with each further failure up to `AUTH_PENALTY_MAX` seconds.
 * An address is forgotten ten minutes after its last failure. `onFirstPenalty` is called once per address.
 */
export function penaltyFor(ip: string, onFirstPenalty: (maxSeconds: number) => void): number {
  const max = limits.authPenaltyMax * 1000;
  if (max === 0) return 0;
  const now = Date.now();
  let record = records.get(ip);
  if (!record || now - record.last > FORGET_AFTER_MS) record = { failures: 0, last: now };
  record.failures += 1;
  record.last = now;
  // Keep the map in order of last failure, and bounded: the oldest address goes first.
  records.delete(ip);
  records.set(ip, record);
  if (records.size > MAX_ADDRESSES) records.delete(records.keys().next().value!);

  const beyond = record.failures - FREE_FAILURES;
  if (beyond <= 0) return 0;
  if (beyond === 1) onFirstPenalty(limits.authPenaltyMax);
  return Math.min(max, FIRST_DELAY_MS * 2 ** (beyond - 1));
}
