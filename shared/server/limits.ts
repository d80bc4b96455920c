// The limits every connection lives under, as sshd's settings of the same names set them: how long it may take
// to log in, how many connections may be logging in at once (in all, and from one address), how many failed
// logins one may make, how many sessions and forwarded connections one may open, how many may be logged in at once, and how a logged-in
// client that has gone away is noticed. The numbers come from shared/core/options.ts.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { AuthContext, Channel, ClientInfo, Connection } from 'ssh2';
import { address, log } from '../core/log.ts';
import { limits } from '../core/options.ts';
import { countFailure, noteFailedConnection, penalizeSource, penaltyFor, sourceRefused } from './penalties.ts';

/**
 * Pings each logged-in client every `KEEPALIVE_INTERVAL` seconds, and closes its connection after
 * `KEEPALIVE_COUNT_MAX` pings in a row go unanswered. (ssh2 reads these two settings as each connection opens.)
 */
export function setKeepalive(): void {
  ssh2.Server.KEEPALIVE_CLIENT_INTERVAL = limits.keepaliveInterval * 1000;
  ssh2.Server.KEEPALIVE_CLIENT_COUNT_MAX = limits.keepaliveCountMax;
}

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
 */
export function admit(socket: Socket): boolean {
  const peer = { ip: socket.remoteAddress, port: socket.remotePort };
  const ip = peer.ip ?? 'unknown';
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
  const key = address(peer.ip, peer.port);
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
      loggedIn += 1;
      socket.once('close', () => (loggedIn -= 1));
      return true;
    }
    if (success) return false; // logins that were under way together when the last place went: not penalized
    const refusedFor = penalizeSource(ip, graceExceeded);
    if (refusedFor) log(peer, `its connections keep ending without logging in: the address is refused for ${refusedFor} s`);
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
 * Watches a connection's login attempts: logs who logged in (and stops its login clock), closes it after
 * `MAX_AUTH_TRIES` failures, notes it as a failed connection if it ends with failures and no login, and delays
 * the answers to an address that has had many failed connections lately (shared/server/penalties.ts).
 * The `none` method, which clients send first only to ask which methods there are, is not a failure.
 */
export function watchLogins(client: Connection, info: ClientInfo): void {
  let username = '';
  let failures = 0;
  let closed = false;
  let succeeded = false;
  client.once('close', () => {
    closed = true;
    if (failures > 0 && !succeeded) noteFailedConnection(info.ip);
  });
  // Answering is the step's job. A step with no 'authentication' listener leaves it to ssh2, which turns every
  // attempt down; our listener would stop that, so then we turn the attempt down ourselves, as ssh2 would.
  const stepAnswers = client.listenerCount('authentication') > 0;
  client.prependListener('authentication', (ctx: AuthContext) => {
    username = ctx.username;
    const accept = ctx.accept.bind(ctx);
    // The place among MAX_CONNECTIONS is taken as the login is granted, so that logins finishing together cannot
    // all pass a count made when they connected.
    ctx.accept = () => {
      if (closed || finishers.get(address(info.ip, info.port))?.() !== false) return accept();
      logRefusal(info, `${loggedIn} connections are logged in (MAX_CONNECTIONS)`);
      client.end();
    };
    const reject = ctx.reject.bind(ctx);
    ctx.reject = (methodsLeft, isPartial) => {
      // Neither the 'none' probe nor a partial success (a first factor passed, step 16) is a failed login.
      if (ctx.method === 'none' || isPartial) return reject(methodsLeft, isPartial);
      failures += 1;
      const total = countFailure(info.ip);
      if (total) console.log(`all addresses: ${total}`);
      const answer = () => {
        if (closed) return;
        if (failures < limits.maxAuthTries) return reject(methodsLeft, isPartial);
        log(info, `${failures} failed logins (MAX_AUTH_TRIES): closing`);
        client.end();
      };
      const delay = penaltyFor(info.ip, (max) =>
        log(info, `this address keeps failing to log in: answers to it now wait, up to ${max} s`));
      if (delay === 0) answer();
      else setTimeout(answer, delay);
    };
    if (!stepAnswers) ctx.reject();
  });
  client.on('ready', () => {
    // A slow password check can end after the client has gone; ssh2 then reports a login nobody will use.
    if (closed) return;
    succeeded = true;
    log(info, `authenticated as ${username}`);
  });
}

/**
 * Lets a connection have at most `MAX_SESSIONS` session channels open at once (as sshd's MaxSessions), and at most
 * `MAX_FORWARDS` channels of `ssh -L` and `-D` (step 11). The step's listeners see a new channel only below that
 * number; above it, the channel is refused. The first refusal on a connection is logged; more are counted by the log.
 */
export function limitChannels(client: Connection, info: ClientInfo): void {
  limit(client, info, 'session', limits.maxSessions, 'a session', 'MAX_SESSIONS');
  limit(client, info, 'tcpip', limits.maxForwards, 'a forwarded connection', 'MAX_FORWARDS');
}

type Listener = (accept: () => unknown, reject: () => void, ...rest: unknown[]) => void;

function limit(client: Connection, info: ClientInfo, event: 'session' | 'tcpip', max: number, what: string, name: string) {
  // With no listener of the step's, ssh2 refuses every such channel itself, and that stays so.
  const stepListeners = client.listeners(event) as Listener[];
  if (stepListeners.length === 0) return;
  client.removeAllListeners(event);
  let open = 0;
  // (Cast: @types/ssh2 types each event's listener on its own, and this one serves two.)
  (client as unknown as NodeJS.EventEmitter).on(event, (accept: () => Channel | undefined,
    reject: (...why: unknown[]) => void, ...rest: unknown[]) => {
    if (open >= max) {
      log(info, `refused ${what}: ${open} are open on this connection (${name})`);
      return reject();
    }
    // Counted from the request (a step may take a while to answer it) until it is refused or its channel closes.
    open += 1;
    let counted = true;
    let answered = false;
    const release = () => {
      if (counted) open -= 1;
      counted = false;
    };
    const acceptCounted = () => {
      answered = true;
      const channel = accept();
      if (channel) channel.once('close', release);
      else release();
      return channel;
    };
    const rejectCounted = (...why: unknown[]) => {
      answered = true;
      release();
      reject(...why);
    };
    // A listener that throws (or an async one whose promise rejects) would leave the request unanswered and its
    // place taken for as long as the connection lasts: it is logged, and the request refused.
    const failed = (err: unknown) => {
      log(info, `internal error: ${err instanceof Error ? err.message : String(err)}`);
      if (!answered) rejectCounted();
    };
    for (const listener of stepListeners) {
      try {
        const result = listener(acceptCounted, rejectCounted, ...rest) as unknown;
        if (result instanceof Promise) result.catch(failed);
      } catch (err) {
        failed(err);
      }
    }
  });
}
