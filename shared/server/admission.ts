// Which connections are let in, as sshd's settings of the same names decide: how many may be logging in at once
// (in all, and from one address), how long each has to log in, and how many may be logged in at once. The numbers
// come from shared/core/options.ts.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { address, log } from '../core/log.ts';
import { fleet, limits } from '../core/options.ts';
import { admitShared, finishShared, limitsShared } from './fleet-limits.ts';
import { penalizeSource, sourceRefused } from './penalties.ts';

let loggingIn = 0;
let loggedIn = 0;
/** Files this process may have open (`ulimit -n`), less some for everything that is not a connection. */
const connectionsPossible = openFilesAllowed() - 64;
/** How many connections each address has logging in now. */
const loggingInFrom = new Map<string, number>();
/**
 * For each connection still logging in (by its address): what to call as its login is granted, which says whether
 * it may be (no more than `MAX_CONNECTIONS` are logged in at once, counted as each login is granted).
 */
const finishers = new Map<string, () => boolean>();

/**
 * Admits a new TCP connection and starts its `LOGIN_GRACE_TIME` clock, or closes it at once (with a log line)
 * when its address is serving a penalty, when `PER_SOURCE_MAX_STARTUPS` connections from its address are already
 * logging in, when `MAX_CONNECTIONS` are logged in, or by `MAX_STARTUPS` (START:RATE:FULL): from START connections
 * logging in, a new one is refused with a chance of RATE%, rising to 100% at FULL. Returns whether it was admitted.
 * With step 21's fleet (shared/server/fleet-limits.ts), the store is asked first, for the same limits on every machine.
 */
export async function admit(socket: Socket): Promise<boolean> {
  const peer = { ip: socket.remoteAddress, port: socket.remotePort };
  const ip = peer.ip ?? 'unknown';
  const key = address(peer.ip, peer.port);
  // Step 21's fleet: its store first (one round trip), then this process's own limits, which stay in force.
  const shared = limitsShared();
  const id = `${fleet.machine}/${process.pid}/${key}`;
  if (shared) {
    const refused = await admitShared(ip, id);
    if (refused || socket.destroyed) {
      if (refused) logRefusal(peer, refused);
      else void finishShared(ip, id, true, false); // gone while the store was asked: its place back, no penalty
      socket.destroy();
      return false;
    }
  }
  const fromHere = loggingInFrom.get(ip) ?? 0;
  const { start, rate, full } = limits.maxStartups;
  const dropChance = loggingIn < start ? 0
    : loggingIn >= full ? 1 : (rate + ((100 - rate) * (loggingIn - start)) / (full - start)) / 100;
  const why = sourceRefused(ip) ? 'this address is serving a penalty for connections that did not log in'
    : fromHere >= limits.perSourceMaxStartups
      ? `${fromHere} connections from this address are already logging in (PER_SOURCE_MAX_STARTUPS)`
      : loggedIn >= limits.maxConnections ? `${loggedIn} connections are logged in (MAX_CONNECTIONS)`
        : loggingIn + loggedIn >= connectionsPossible
          ? `${loggingIn + loggedIn} connections are open, and this process may open only ${connectionsPossible + 64} `
            + 'files (raise ulimit -n, or lower MAX_CONNECTIONS)'
          : Math.random() < dropChance ? `${loggingIn} connections are already logging in (MAX_STARTUPS)`
            : undefined;
  if (why) {
    if (shared) void finishShared(ip, id, true, false);
    logRefusal(peer, why);
    socket.destroy();
    return false;
  }
  loggingIn += 1;
  loggingInFrom.set(ip, fromHere + 1);
  let graceExceeded = false;
  let clock = limits.loginGraceTime === 0 ? undefined : setTimeout(() => {
    log(peer, `not logged in after ${limits.loginGraceTime} s (LOGIN_GRACE_TIME): closing`);
    graceExceeded = true;
    socket.destroy();
  }, limits.loginGraceTime * 1000);
  let finished = false;
  const finish = (success: boolean): boolean => {
    if (finished) return false;
    finished = true;
    clearTimeout(clock);
    clock = undefined; // not kept for the connection's life by the listeners that call finish()
    loggingIn -= 1;
    const left = loggingInFrom.get(ip)! - 1;
    if (left === 0) loggingInFrom.delete(ip);
    else loggingInFrom.set(ip, left);
    finishers.delete(key);
    if (success && loggedIn < limits.maxConnections) {
      if (shared) void finishShared(ip, id, true, false);
      loggedIn += 1;
      socket.once('close', () => (loggedIn -= 1));
      return true;
    }
    if (success) {
      if (shared) void finishShared(ip, id, true, false);
      return false; // logins that were under way together when the last place went: not penalized
    }
    const refusedFor = penalizeSource(ip, graceExceeded);
    const report = (seconds: number, where = '') => seconds
      && log(peer, `its connections keep ending without logging in: the address is refused for ${seconds} s${where}`);
    // With a fleet, the store's count is the one that says (this process's counts only part of it), if it answers.
    if (!shared) report(refusedFor);
    else void finishShared(ip, id, false, graceExceeded).then((fleetFor) =>
      fleetFor === undefined ? report(refusedFor) : report(fleetFor, ' on every machine of the fleet'));
    return false;
  };
  finishers.set(key, () => finish(true));
  // A connection stops counting as "logging in" when it has logged in, or when it closes.
  socket.once('close', () => finish(false));
  return true;
}

/** When each address last had a refusal logged, and how many refusals have not been logged since. */
const refusals = new Map<string, { logged: number; unlogged: number }>();
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Logs `refused: WHY`, at most once every ten seconds for one address: a client that reconnects as fast as it is
 * refused would otherwise write the log as fast as it can connect. The next line counts the ones left out.
 */
function logRefusal(peer: { ip?: string; port?: number }, why: string): void {
  const ip = peer.ip ?? 'unknown';
  const now = Date.now();
  const last = refusals.get(ip);
  if (last && now - last.logged < REFUSAL_LOG_INTERVAL_MS) {
    last.unlogged += 1;
    return;
  }
  const since = last?.unlogged ? ` (and ${last.unlogged} more from this address since the last such line)` : '';
  log(peer, `refused: ${why}${since}`);
  refusals.delete(ip);
  refusals.set(ip, { logged: now, unlogged: 0 });
  if (refusals.size > 10_000) refusals.delete(refusals.keys().next().value!);
}

/** The soft limit on open files, from /proc/self/limits (Linux); where that cannot be read, no limit. */
function openFilesAllowed(): number {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line ? Number(line[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * Takes a place among `MAX_CONNECTIONS` for the connection `peer`, as its login is granted (so that logins finishing
 * together cannot all pass a count made when they connected). False, with a log line, when no place is left.
 */
export function takeLoginPlace(peer: { ip?: string; port?: number }): boolean {
  if (finishers.get(address(peer.ip, peer.port))?.() !== false) return true;
  logRefusal(peer, `${loggedIn} connections are logged in (MAX_CONNECTIONS)`);
  return false;
}
