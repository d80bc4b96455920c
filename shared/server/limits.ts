// The limits a connection lives under once it is in (shared/server/admission.ts lets it in), as sshd's settings of
// the same names set them: how many failed logins it may make, how many sessions and forwarded connections it may
// open, and how a logged-in client that has gone away is noticed. The numbers come from shared/core/options.ts.
import ssh2 from 'ssh2';
import type { AuthContext, Channel, ClientInfo, Connection } from 'ssh2';
import { log } from '../core/log.ts';
import { limits } from '../core/options.ts';
import { takeLoginPlace } from './admission.ts';
import { limitsShared, noteFailedShared, penaltyShared } from './fleet-limits.ts';
import { countFailure, noteFailedConnection, penaltyFor } from './penalties.ts';
import { counterWentBack, describeSignature, securityKeySignature } from './security-key-logins.ts';
import { fingerprint } from '../core/fingerprint.ts';

/**
 * Pings each logged-in client every `KEEPALIVE_INTERVAL` seconds, and closes its connection after
 * `KEEPALIVE_COUNT_MAX` pings in a row go unanswered. (ssh2 reads these two settings as each connection opens.)
 */
export function setKeepalive(): void {
  ssh2.Server.KEEPALIVE_CLIENT_INTERVAL = limits.keepaliveInterval * 1000;
  ssh2.Server.KEEPALIVE_CLIENT_COUNT_MAX = limits.keepaliveCountMax;
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
  let securityKeyNote = '';
  client.once('close', () => {
    closed = true;
    if (failures > 0 && !succeeded) {
      noteFailedConnection(info.ip);
      if (limitsShared()) noteFailedShared(info.ip, username); // step 21: on every machine of the fleet
    }
  });
  // Answering is the step's job. A step with no 'authentication' listener leaves it to ssh2, which turns every
  // attempt down; our listener would stop that, so then we turn the attempt down ourselves, as ssh2 would.
  const stepAnswers = client.listenerCount('authentication') > 0;
  client.prependListener('authentication', (ctx: AuthContext) => {
    username = ctx.username;
    // A security key's signature says whether the token was touched, and counts (shared/server/security-key-logins.ts).
    const securityKey = securityKeySignature(ctx);
    // A key is signed for under its own algorithm (sshd checks it too): a security key offered as ssh-ed25519, say,
    // would be checked as the kind of key it is not.
    const offeredAs = ctx.method === 'publickey' ? ctx.key.algo : undefined;
    const blobType = ctx.method === 'publickey' ? keyTypeName(ctx.key.data) : undefined;
    // What a key must pass besides its signature, checked when the step takes it (a login, or a first factor).
    const keyRefused = (): boolean => {
      if (offeredAs !== blobType) {
        log(info, `a key offered as ${offeredAs}, but its blob is of type ${blobType}: refused`);
        return true;
      }
      if (securityKey && 'counter' in securityKey.signed) {
        const { counter } = securityKey.signed;
        const last = counterWentBack(securityKey.blob, counter);
        if (last !== undefined) {
          log(info, `security key ${fingerprint(securityKey.blob)}: its counter went backwards (${counter} after `
            + `${last}), as a copy of the key's would: refused`);
          return true;
        }
        securityKeyNote = ` with a security key (${describeSignature(securityKey.signed)})`;
      }
      return false;
    };
    const accept = ctx.accept.bind(ctx);
    ctx.accept = () => {
      if (keyRefused()) return ctx.reject();
      if (closed || takeLoginPlace(info)) return accept();
      client.end();
    };
    const reject = ctx.reject.bind(ctx);
    ctx.reject = (methodsLeft, isPartial) => {
      // A key that passed as a first factor (step 16) must pass the same checks as one that logs in.
      if (isPartial && ctx.method === 'publickey' && keyRefused()) return ctx.reject();
      // Neither the 'none' probe nor a partial success (a first factor passed, step 16) is a failed login.
      if (ctx.method === 'none' || isPartial) return reject(methodsLeft, isPartial);
      failures += 1;
      if (securityKey) log(info, `security key ${fingerprint(securityKey.blob)} refused; its signature: ${describeSignature(securityKey.signed)}`);
      const total = countFailure(info.ip);
      if (total) console.log(`all addresses: ${total}`);
      const answer = () => {
        if (closed) return;
        if (failures < limits.maxAuthTries) return reject(methodsLeft, isPartial);
        log(info, `${failures} failed logins (MAX_AUTH_TRIES): closing`);
        client.end();
      };
      const slowed = (what: string) =>
        log(info, `${what} keeps failing to log in: answers to it now wait, up to ${limits.authPenaltyMax} s`);
      let firstHere = false;
      const delay = penaltyFor(info.ip, () => (firstHere = true));
      const wait = (ms: number) => (ms === 0 ? answer() : setTimeout(answer, ms));
      if (!limitsShared()) {
        if (firstHere) slowed('this address');
        return wait(delay);
      }
      // Step 21: the fleet's counts (this address's, and this user's from any address), when the store answers.
      void penaltyShared(info.ip, username, (what) => slowed(`${what}, on this fleet,`)).then((shared) => {
        if (shared === undefined && firstHere) slowed('this address');
        wait(Math.max(delay, shared ?? 0));
      });
    };
    if (!stepAnswers) ctx.reject();
  });
  client.on('ready', () => {
    // A slow password check can end after the client has gone; ssh2 then reports a login nobody will use.
    if (closed) return;
    succeeded = true;
    log(info, `authenticated as ${username}${securityKeyNote}`);
  });
}

/** The type name a key blob starts with (`ssh-ed25519`, ...), or '' if it has none. */
function keyTypeName(blob: Buffer): string {
  if (blob.length < 4) return '';
  const length = blob.readUInt32BE(0);
  return length <= blob.length - 4 ? blob.toString('latin1', 4, 4 + length) : '';
}

/**
 * Lets a connection have at most `MAX_SESSIONS` session channels open at once (as sshd's MaxSessions), and at most
 * `MAX_FORWARDS` channels of `ssh -L` and `-D` (step 11), and as many of `ssh -L` to a socket (step 23); and a user,
 * over all their connections, at most `MAX_FORWARDS_PER_USER` forwarded channels of both kinds. The step's listeners
 * see a new channel only below those numbers; above them, the channel is refused. The first refusal on a connection
 * is logged; more are counted by the log.
 */
export function limitChannels(client: Connection, info: ClientInfo): void {
  // The user is known once the login is over, before any channel can be asked for.
  let user = '';
  let trying = '';
  client.on('authentication', (ctx) => (trying = ctx.username));
  client.once('ready', () => (user = trying));
  const perUser = { of: () => user, max: limits.maxForwardsPerUser };
  limit(client, info, 'session', limits.maxSessions, 'a session', 'MAX_SESSIONS');
  limit(client, info, 'tcpip', limits.maxForwards, 'a forwarded connection', 'MAX_FORWARDS', perUser);
  limit(client, info, 'openssh.streamlocal', limits.maxForwards, 'a forwarded connection to a socket', 'MAX_FORWARDS', perUser);
}

type Listener = (accept: () => unknown, reject: () => void, ...rest: unknown[]) => void;

type Limited = 'session' | 'tcpip' | 'openssh.streamlocal';

/** Forwarded channels open, by user, over all their connections (`MAX_FORWARDS_PER_USER`). */
const forwardsOf = new Map<string, number>();

/** One forwarded channel of `user`'s fewer. */
function forwardClosed(user: string): void {
  const left = (forwardsOf.get(user) ?? 1) - 1;
  if (left > 0) forwardsOf.set(user, left);
  else forwardsOf.delete(user);
}

function limit(client: Connection, info: ClientInfo, event: Limited, max: number, what: string, name: string,
  perUser?: { of: () => string; max: number }) {
  // With no listener of the step's, ssh2 refuses every such channel itself, and that stays so.
  const stepListeners = client.listeners(event) as Listener[];
  if (stepListeners.length === 0) return;
  client.removeAllListeners(event);
  let open = 0;
  // What a connection counted is given back when it ends, whatever became of each channel: a user's count outlives
  // the connection, and a channel that never says it closed must not hold a place of theirs for ever.
  const counting = new Set<() => void>();
  client.once('close', () => counting.forEach((release) => release()));
  // (Cast: @types/ssh2 types each event's listener on its own, and this one serves two.)
  (client as unknown as NodeJS.EventEmitter).on(event, (accept: () => Channel | undefined,
    reject: (...why: unknown[]) => void, ...rest: unknown[]) => {
    if (open >= max) {
      log(info, `refused ${what}: ${open} are open on this connection (${name})`);
      return reject();
    }
    const user = perUser?.of() ?? '';
    const theirs = forwardsOf.get(user) ?? 0;
    if (perUser && theirs >= perUser.max) {
      log(info, `refused ${what}: ${user} has ${theirs} open over all their connections (MAX_FORWARDS_PER_USER)`);
      return reject();
    }
    if (perUser) forwardsOf.set(user, theirs + 1);
    // Counted from the request (a step may take a while to answer it) until it is refused or its channel closes.
    open += 1;
    let counted = true;
    let answered = false;
    const release = () => {
      if (counted) {
        open -= 1;
        if (perUser) forwardClosed(user);
      }
      counted = false;
      counting.delete(release);
    };
    counting.add(release);
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
