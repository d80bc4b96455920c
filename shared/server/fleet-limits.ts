// The limits of shared/server/penalties.ts and admission.ts, kept in the store for every machine of a fleet at
// once (step 21): an address refused on one machine is refused on all, the connections it has logging in count on
// all, and its failed connections (and a user's, from whatever address) slow down its answers on all, with the
// same amounts. Each is a Lua script, run by the store in one round trip and all at once, on the store's clock; every
// key expires by itself. The process's own limits stay in force beside them: with the store gone, those are left.
import { createHash } from 'node:crypto';
import { LOGIN_WAIT_MS, type Store } from '../core/store.ts';
import { limits } from '../core/options.ts';
import { amounts } from './penalties.ts';

let store: Store | undefined;

/**
 * Connections that finished while the store did not answer, by id, with their address: a call of theirs that the
 * store had not answered may still run on it (a hung store runs what it was sent when it wakes), and count them as
 * logging in until their grace time ends. Their places are given back when the store answers again.
 */
const unreleased = new Map<string, string>();
const MAX_UNRELEASED = 10_000;
// KEYS: addresses' connections logging in. ARGV: a connection of each, in the same order.
const RELEASE = `for i, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[i]) end return 1`;

/** Keeps this process's limits in `shared` as well as in the process, from now on; returns `shared`. */
export function shareLimits(shared: Store): Store {
  shared.on('up', () => void release());
  return (store = shared);
}

/** Gives back, on the store, the places of the connections in `unreleased`, a thousand a call. */
async function release(): Promise<void> {
  const batch = [...unreleased].slice(0, 1000);
  if (batch.length === 0) return;
  const answer = await store!.script(RELEASE, batch.map(([, ip]) => `startups:${ip}`), batch.map(([id]) => id));
  if (answer === undefined) return; // again when the store is back
  for (const [id] of batch) unreleased.delete(id);
  return release();
}

/** Whether the limits are shared (step 21), and so whether to ask the store at all. */
export function limitsShared(): boolean {
  return store !== undefined;
}

const NOW = `local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)`;

// KEYS: the address's penalty, its connections logging in. ARGV: this connection, its grace time (ms), the most
// connections one address may have logging in. Returns 'ok' (the connection then counts), 'penalty', or the number.
const ADMIT = `${NOW}
if redis.call('HGET', KEYS[1], 'enforced') == '1' and tonumber(redis.call('HGET', KEYS[1], 'until')) > now then
  return 'penalty'
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local n = redis.call('ZCARD', KEYS[2])
if n >= tonumber(ARGV[3]) then return tostring(n) end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 'ok'`;

// KEYS: the address's connections logging in, its penalty. ARGV: the connection, whether it logged in (1 or 0), the
// penalty it adds if not (ms), the penalty from which the address is refused, the longest (ms). Returns the seconds
// the address is refused for when this connection is the one that starts the refusal, else 0.
const FINISH = `redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == '1' then return 0 end
${NOW}
local untilAt = tonumber(redis.call('HGET', KEYS[2], 'until')) or now
local enforced = redis.call('HGET', KEYS[2], 'enforced') == '1'
if untilAt <= now then untilAt = now enforced = false end
untilAt = math.min(untilAt + tonumber(ARGV[3]), now + tonumber(ARGV[5]))
local was = enforced
enforced = enforced or untilAt - now >= math.min(tonumber(ARGV[4]), tonumber(ARGV[5]))
redis.call('HSET', KEYS[2], 'until', untilAt, 'enforced', enforced and '1' or '0')
redis.call('PEXPIRE', KEYS[2], untilAt - now)
if enforced and not was then return math.ceil((untilAt - now) / 1000) end
return 0`;

// KEYS: the address's failed connections, the user's. ARGV: how many to add to each (1 when a connection ended
// with a failed login, 0 to ask), the free ones, how many are forgiven a minute, the first delay, the longest (ms).
// Returns for each its delay (ms) and 1 when it is the first delay since the count was last down to nothing.
const FAILED = `${NOW}
local result = {}
for i, key in ipairs(KEYS) do
  local failed = tonumber(redis.call('HGET', key, 'failed')) or 0
  local at = tonumber(redis.call('HGET', key, 'at')) or now
  failed = math.max(0, failed - (now - at) / 60000 * tonumber(ARGV[3])) + tonumber(ARGV[1])
  local beyond = math.ceil(failed) - tonumber(ARGV[2])
  local logged = redis.call('HGET', key, 'logged') == '1'
  local delay, first = 0, 0
  if beyond > 0 then
    delay = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (beyond - 1))
    if not logged and ARGV[1] == '0' then first = 1 end -- when asked: the answer that waits is the one logged
  end
  if failed > 0 then
    redis.call('HSET', key, 'failed', tostring(failed), 'at', now, 'logged', (logged or first == 1) and '1' or '0')
    redis.call('PEXPIRE', key, math.ceil(failed / tonumber(ARGV[3]) * 60000) + 1)
  else
    redis.call('DEL', key)
  end
  result[2 * i - 1] = math.floor(delay)
  result[2 * i] = first
end
return result`;

/** A user name as a key: hashed, so that a name of 30 kB sent on purpose makes a key of 22 characters. */
const userKey = (user: string) => `failed-user:${createHash('sha256').update(user).digest('base64url').slice(0, 22)}`;

/**
 * Asks the store whether the connection `id` from `ip` may start logging in: undefined when it may (it then counts
 * among the address's connections logging in on every machine, until `finishShared`), or why not. Also undefined
 * when the limits are not shared or the store does not answer within LOGIN_WAIT_MS: the process's own limits then
 * decide alone (and a late answer's place is given back by `finishShared`, as any other).
 */
export async function admitShared(ip: string, id: string): Promise<string | undefined> {
  const grace = (limits.loginGraceTime || 86_400) * 1000;
  const answer = await store?.script(ADMIT, [`penalty:${ip}`, `startups:${ip}`], [id, grace, limits.perSourceMaxStartups],
    LOGIN_WAIT_MS);
  if (answer === 'penalty') {
    return 'this address is serving a penalty for connections that did not log in, on this fleet';
  }
  if (typeof answer === 'string' && answer !== 'ok') {
    return `${answer} connections from this address are already logging in, on this fleet (PER_SOURCE_MAX_STARTUPS)`;
  }
  return undefined;
}

/**
 * Notes that the connection `id` from `ip` stopped logging in (`loggedIn`, or it ended without: then its address's
 * penalty grows, by more if `graceExceeded`). Returns the seconds the address is now refused for on every machine,
 * when this connection started that refusal, else 0; undefined when the store did not answer.
 */
export async function finishShared(ip: string, id: string, loggedIn: boolean, graceExceeded: boolean): Promise<number | undefined> {
  const max = limits.sourcePenaltyMax * 1000;
  const added = (graceExceeded ? amounts.graceExceededSeconds : amounts.noauthSeconds) * 1000;
  const answer = await store?.script(FINISH, [`startups:${ip}`, `penalty:${ip}`],
    [id, loggedIn || max === 0 ? 1 : 0, added, amounts.penaltyMinSeconds * 1000, max]);
  if (answer === undefined && store && unreleased.size < MAX_UNRELEASED) unreleased.set(id, ip);
  return typeof answer === 'number' ? answer : undefined;
}

/**
 * How long to wait before answering a failed login from `ip` for `user`, by the failed connections of each on
 * every machine (counted by `noteFailedShared`, with shared/server/penalties.ts's amounts), in ms; `onFirst` is
 * called with what is now slowed (`this address`, or `user NAME`) when it starts to wait. Undefined when the store
 * did not answer (or the limits are not shared).
 */
export async function penaltyShared(ip: string, user: string, onFirst: (what: string) => void): Promise<number | undefined> {
  return failed(ip, user, 0, onFirst);
}

/** Notes, on every machine, that a connection from `ip` ended with a failed login for `user`, and without a login. */
export function noteFailedShared(ip: string, user: string): void {
  void failed(ip, user, 1, () => {});
}

async function failed(ip: string, user: string, add: number, onFirst: (what: string) => void): Promise<number | undefined> {
  const max = limits.authPenaltyMax * 1000;
  if (!store || max === 0) return undefined;
  const answer = await store.script(FAILED, [`failed:${ip}`, userKey(user)],
    [add, amounts.freeConnections, amounts.forgivenPerMinute, amounts.firstDelayMs, max], add ? undefined : LOGIN_WAIT_MS);
  if (!Array.isArray(answer)) return undefined;
  const [addressDelay, addressFirst, userDelay, userFirst] = answer.map(Number) as [number, number, number, number];
  if (addressFirst) onFirst('this address');
  if (userFirst) onFirst(`user ${user}`);
  return Math.max(addressDelay, userDelay);
}
