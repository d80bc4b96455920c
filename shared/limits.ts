// The limits every connection lives under, as sshd's settings of the same names set them: how long it may take
// to log in, how many connections may be logging in at once, how many failed logins one may make, and how a
// logged-in client that has gone away is noticed. The numbers come from shared/options.ts.
import type { Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { AuthContext, ClientInfo, Connection } from 'ssh2';
import { address, log } from './log.ts';
import { limits } from './options.ts';
import { penaltyFor } from './penalties.ts';

/**
 * Pings each logged-in client every `KEEPALIVE_INTERVAL` seconds, and closes its connection after
 * `KEEPALIVE_COUNT_MAX` pings in a row go unanswered. (ssh2 reads these two settings as each connection opens.)
 */
export function setKeepalive(): void {
  ssh2.Server.KEEPALIVE_CLIENT_INTERVAL = limits.keepaliveInterval * 1000;
  ssh2.Server.KEEPALIVE_CLIENT_COUNT_MAX = limits.keepaliveCountMax;
}

let loggingIn = 0;
/** For each connection still logging in (by its address): what to call once it has. */
const finishers = new Map<string, () => void>();

/**
 * Admits a new TCP connection and starts its `LOGIN_GRACE_TIME` clock, or closes it at once when
 * `MAX_STARTUPS` connections are already logging in. Returns whether it was admitted.
 */
export function admit(socket: Socket): boolean {
  const peer = { ip: socket.remoteAddress, port: socket.remotePort };
  if (loggingIn >= limits.maxStartups) {
    log(peer, `refused: ${loggingIn} connections are already logging in (MAX_STARTUPS)`);
    socket.destroy();
    return false;
  }
  loggingIn += 1;
  const clock = limits.loginGraceTime === 0 ? undefined : setTimeout(() => {
    log(peer, `not logged in after ${limits.loginGraceTime} s (LOGIN_GRACE_TIME): closing`);
    socket.destroy();
  }, limits.loginGraceTime * 1000);
  const key = address(peer.ip, peer.port);
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(clock);
    loggingIn -= 1;
    finishers.delete(key);
  };
  finishers.set(key, finish);
  // A connection stops counting as "logging in" when it has logged in, or when it closes.
  socket.once('close', finish);
  return true;
}

/**
 * Watches a connection's login attempts: logs who logged in (and stops its login clock), closes it after
 * `MAX_AUTH_TRIES` failures, and delays the answers to an address that keeps failing (shared/penalties.ts).
 * The `none` method, which clients send first only to ask which methods there are, is not a failure.
 */
export function watchLogins(client: Connection, info: ClientInfo): void {
  let username = '';
  let failures = 0;
  let closed = false;
  client.once('close', () => (closed = true));
  // Answering is the step's job. A step with no 'authentication' listener leaves it to ssh2, which turns every
  // attempt down; our listener would stop that, so then we turn the attempt down ourselves, as ssh2 would.
  const stepAnswers = client.listenerCount('authentication') > 0;
  client.prependListener('authentication', (ctx: AuthContext) => {
    username = ctx.username;
    const reject = ctx.reject.bind(ctx);
    ctx.reject = (methodsLeft, isPartial) => {
      if (ctx.method === 'none') return reject(methodsLeft, isPartial);
      failures += 1;
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
    log(info, `authenticated as ${username}`);
    finishers.get(address(info.ip, info.port))?.();
  });
}
