// Step 20's logins onward, to the inner server, user by user. The inner server sees each of them come from the
// bastion's own address, so its limits for an address (PER_SOURCE_MAX_STARTUPS, and the penalty for connections
// that end without a login) count every user's together: one user's sessions opened by the dozen and closed a few
// milliseconds later, each an onward login cut off halfway, had the inner server refuse every user of the bastion,
// for some 20 s after he stopped. So each user logs in onward one login at a time, a login begun is let finish, and
// a user whose onward logins keep failing (an agent with no key for it, one that never answers) waits a minute.
// Each session onward is a connection of its own to the inner server, which takes so many (MAX_CONNECTIONS, 1000 by
// default) from everyone together: a user holds ONWARD_SESSIONS_MAX at most, so that one cannot take them all.
import type { Client, ConnectConfig } from 'ssh2';
import { limits } from '../core/options.ts';

/** The time over which ONWARD_FAILURES_MAX (failed onward logins a user may have) counts, in milliseconds. */
const PER_MS = 60_000;

/** Each user's last onward login, under way or waiting: the next one waits for it. */
const last = new Map<string, Promise<void>>();
/** When each user's onward logins failed, in the last minute. */
const failed = new Map<string, number[]>();

/** What `onwardTurn()` gives: to call once the login has ended, saying whether it failed. The first call counts. */
export type Finished = (failure?: boolean) => void;

/**
 * Waits for `user`'s turn to log in onward: one login at a time for each user, in the order asked. Resolves with
 * the function to call when that login has ended (the next one waits for it), or, when the user's onward logins
 * failed ONWARD_FAILURES_MAX times in the last minute, with a sentence that says so (and nothing waits for it).
 * (The inner server forgives ten failed connections a minute from an address, and refuses it once those that
 * ended without a login have added up to 15 s of penalty, a second each: a few users' failures at most, not one's.)
 */
export async function onwardTurn(user: string): Promise<Finished | string> {
  const before = last.get(user);
  let finished: Finished = () => {};
  const mine = new Promise<void>((resolve) => {
    finished = (failure = false) => {
      finished = () => {};
      if (failure) failed.set(user, [...recentFailures(user), Date.now()]);
      if (last.get(user) === mine) last.delete(user);
      resolve();
    };
  });
  last.set(user, mine);
  await before;
  if (recentFailures(user).length >= limits.onwardFailuresMax) {
    finished();
    return `${limits.onwardFailuresMax} of your logins onward failed in the last minute: try again in a minute`;
  }
  return (failure) => finished(failure);
}

/** The times of `user`'s failed onward logins in the last minute (older ones are forgotten). */
function recentFailures(user: string): number[] {
  const recent = (failed.get(user) ?? []).filter((at) => Date.now() - at < PER_MS);
  if (recent.length) failed.set(user, recent);
  else failed.delete(user);
  return recent;
}

/** Each user's connections onward, from the moment one is asked for until it has closed (or was never begun). */
const open = new Map<string, number>();

/** The logins onward under way: how each is to be ended, and whether it is logged in, or is to be ended once it is. */
const underWay = new WeakMap<Client, { finished: Finished; ready: boolean; ending: boolean }>();

/**
 * Logs `user` in onward, `connection.connect(config)`, at their turn (`onwardTurn()`). Resolves once it has begun,
 * with nothing, or with why it was not begun: among those, the user has ONWARD_SESSIONS_MAX connections onward
 * already. Once it is logged in, or has closed before, the user's next one begins. Closed after the key exchange
 * but before it was logged in, it counts as a failure of the user's: the inner server did not take what their agent
 * offered, or the agent never answered.
 */
export async function connectOnward(user: string, connection: Client, config: ConnectConfig): Promise<string | undefined> {
  const held = open.get(user) ?? 0;
  if (held >= limits.onwardSessionsMax) {
    return `you have ${held} sessions on ${config.host}:${config.port} (ONWARD_SESSIONS_MAX): end one first`;
  }
  open.set(user, held + 1);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    const left = open.get(user)! - 1;
    if (left) open.set(user, left);
    else open.delete(user);
  };
  const state = { finished: (() => {}) as Finished, ready: false, ending: false };
  underWay.set(connection, state);
  const finished = await onwardTurn(user);
  if (typeof finished === 'string') return (release(), finished);
  if (state.ending) return (release(), void finished()); // the user left while it waited: nothing begun
  connection.once('close', release);
  state.finished = finished;
  let keysExchanged = false;
  connection.once('handshake', () => (keysExchanged = true));
  connection.prependOnceListener('ready', () => ((state.ready = true), finished()));
  connection.once('close', () => finished(keysExchanged)); // unless it was logged in first
  // Each packet at once, as on the server's own connections: Nagle's delay cost every session onward some 90 ms.
  connection.once('connect', () => connection.setNoDelay(true));
  connection.connect(config);
}

/**
 * Ends the login onward on `connection`: at once if it is logged in, or was never begun; else once it is (then
 * nothing else that waits for it to be ready runs: nothing is opened on it). A login cut off halfway would count
 * against the bastion's address on the inner server, for every user.
 */
export function endOnward(connection: Client): void {
  const state = underWay.get(connection);
  if (!state || state.ready) return void connection.destroy();
  state.ending = true;
  connection.removeAllListeners('ready').once('ready', () => ((state.ready = true), state.finished(), connection.end()));
}
