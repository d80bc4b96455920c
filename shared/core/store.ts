// The store the machines of a fleet share their state in (step 21): a Valkey or Redis server, reached with ioredis.
// A store can go away, or hang: then each call answers `undefined` at once instead of waiting, one line says so,
// and the step does what it would do alone until the store answers again (ioredis reconnects by itself).
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import { explain } from './errors.ts';
import { fleet } from './options.ts';

/** How long one call may take before the store counts as unreachable, in milliseconds (STORE_TIMEOUT). */
const ANSWER_MS = fleet.storeTimeout * 1000;
/** How often a store that stopped answering is asked again, in milliseconds. */
const PROBE_MS = 1000;
/**
 * How long someone logging in waits for the store, in milliseconds, before the step goes on with what this machine
 * knows (its own limits, its own people): a store that hangs must not hang logins for ANSWER_MS each.
 */
export const LOGIN_WAIT_MS = 100;
/**
 * The most calls sent and not yet answered: past it, a call is not sent, and answers undefined at once. A hung
 * store with a long STORE_TIMEOUT would otherwise keep every call of a flood of connections, in this process.
 */
const MAX_UNANSWERED = 1000;

/** ioredis, set to fail at once rather than queue a call while it is not connected, and to reconnect within 2 s. */
const settings: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: ANSWER_MS,
  connectTimeout: 2000,
  retryStrategy: (attempt) => Math.min(attempt * 250, 2000),
};

/**
 * A connection to the store at `url` (`redis://HOST:PORT`). `up` says whether it answers now; it emits `'down'`
 * and `'up'` as that changes, and logs one line each time (`store ...: unreachable (...)`, `store ...: reachable
 * again`). `roundTrips` counts the calls made, for the bench.
 */
export class Store extends EventEmitter {
  roundTrips = 0;
  /** The URL as logged: without a password. */
  readonly shown: string;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly handlers = new Map<string, (message: string) => void>();
  private readonly scripts = new Map<string, string>();
  /** This process's own channel, on which probe() checks that what is published comes back. */
  private readonly probeChannel = `store-probe:${randomUUID()}`;
  private echo?: (message: string) => void;
  private state: 'connecting' | 'up' | 'down' = 'connecting';
  /** When each call not yet answered was sent, by its number, oldest first: the store answers them in that order. */
  private readonly unanswered = new Map<number, number>();
  private everUp = false;
  /** Whether a login has waited LOGIN_WAIT_MS for the store in vain, and no call has been answered in time since. */
  private slow = false;
  private closed = false;
  private probing?: NodeJS.Timeout;

  constructor(url: string) {
    super();
    this.shown = url.replace(/\/\/[^@/]*@/, '//');
    this.commands = new Redis(url, settings);
    // A connection that subscribes can do nothing else; ioredis subscribes it again after each reconnection.
    this.subscriber = new Redis(url, { ...settings, enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
    for (const connection of [this.commands, this.subscriber]) {
      connection.on('error', (err: Error) => this.down(err));
      connection.on('close', () => this.down(new Error('the connection closed')));
      connection.on('ready', () => this.probe());
    }
    this.subscriber.on('message', (channel: string, message: string) => this.handlers.get(channel)?.(message));
    this.subscribe(this.probeChannel, (message) => this.echo?.(message));
  }

  /**
   * Runs the Lua script `source` on the store with `keys` and `args` (ioredis sends it once, then by its SHA-1),
   * and returns what it returns, or undefined when the store is unreachable or does not answer in time: ANSWER_MS,
   * or `waitMs` if given. Past `waitMs` the call is not taken back: it may still run on the store, later.
   */
  async script(source: string, keys: string[], args: (string | number)[], waitMs?: number): Promise<unknown> {
    if (!this.up) return undefined;
    // A call already waiting longer than that is answered first: this one could only be answered later still.
    if (waitMs !== undefined && this.waitedMs() >= waitMs) return undefined;
    let name = this.scripts.get(source);
    if (!name) {
      name = `script${this.scripts.size}`;
      this.commands.defineCommand(name, { lua: source });
      this.scripts.set(source, name);
    }
    // (Cast: ioredis types the commands defineCommand adds as unknown to it.)
    const run = (this.commands as unknown as Record<string, (...all: unknown[]) => Promise<unknown>>)[name]!;
    const answer = this.call(() => run.call(this.commands, keys.length, ...keys, ...args));
    if (waitMs === undefined) return answer;
    let timer: NodeJS.Timeout | undefined;
    // Late only once this turn of the event loop has read what came meanwhile: a process busy for a while (its own
    // work, not the store's) finds the answer already there, and takes it.
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => setImmediate(resolve, 'late'), waitMs)));
    const first = await Promise.race([answer, late]);
    clearTimeout(timer);
    if (first !== undefined) this.answeredInTime(first !== 'late'); // (undefined: failed, and down() says so)
    return first === 'late' ? undefined : first;
  }

  /**
   * Says so, once, when a login waited for the store in vain (the fleet's limits then go unchecked for it, and this
   * machine's own decide), and again once a call is answered in time.
   */
  private answeredInTime(inTime: boolean): void {
    if (inTime === !this.slow) return;
    this.slow = !inTime;
    console.log(`store ${this.shown}: ${this.slow ? `slow (no answer in ${LOGIN_WAIT_MS} ms): logins go on with this machine's own `
      + 'limits alone until it answers in time' : 'answering in time again: the fleet\'s limits are checked again'}`);
  }

  /** How long the oldest call not yet answered has waited, in milliseconds; 0 when every call is answered. */
  private waitedMs(): number {
    const [oldest] = this.unanswered.values();
    return oldest === undefined ? 0 : performance.now() - oldest;
  }

  /** Publishes `message` on `channel`; false when the store is unreachable. */
  async publish(channel: string, message: string): Promise<boolean> {
    if (!this.up) return false;
    return (await this.call(() => this.commands.publish(channel, message))) !== undefined;
  }

  /** Resolves once the store has answered every call made before this one (at once when it is unreachable). */
  async settled(): Promise<void> {
    if (this.up) await this.call(() => this.commands.ping());
  }

  /** Calls `onMessage` with each message published on `channel`, by any machine, from now on. */
  subscribe(channel: string, onMessage: (message: string) => void): void {
    this.handlers.set(channel, onMessage);
    this.subscriber.subscribe(channel).catch((err: Error) => this.down(err));
  }

  /** Closes both connections (when the step stops). */
  close(): void {
    this.closed = true;
    clearTimeout(this.probing);
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  private async call<T>(run: () => Promise<T>): Promise<T | undefined> {
    if (this.unanswered.size >= MAX_UNANSWERED) return undefined; // not sent: the store is far behind already
    const number = ++this.roundTrips;
    this.unanswered.set(number, performance.now());
    try {
      return await run();
    } catch (err) {
      // An error the store answers with (a script's own) is logged as it is. Any other is the connection's: lost, not
      // answered in time, or lost with this call on its way (ioredis: `Reached the max retries per request limit`).
      if (err instanceof ReplyError) console.log(`store ${this.shown}: ${(err as Error).message}`);
      else this.down(err as Error);
      return undefined;
    } finally {
      this.unanswered.delete(number);
    }
  }

  /** Counts the store as unreachable (logged once an outage) and asks it again every PROBE_MS until it answers. */
  private down(err: Error): void {
    if (this.closed) return;
    if (this.state !== 'down') {
      console.log(`store ${this.shown}: ${this.state === 'up' ? 'unreachable' : 'cannot be reached'} (${explain(err)}): `
        + 'this machine keeps its own limits, and its chat room is local-only, until the store answers; reconnecting');
      if (this.state === 'up') this.emit('down');
      this.state = 'down';
    }
    this.probing ??= setTimeout(() => {
      this.probing = undefined;
      this.probe();
    }, PROBE_MS);
  }

  /**
   * Up once both connections are ready and a message published on this process's own channel comes back on the
   * subscriber in time: then the subscriptions are in place again too (ioredis sends them just after 'ready'),
   * and nothing published from then on is missed.
   */
  private probe(): void {
    if (this.closed || this.state === 'up' || this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return;
    const token = randomUUID();
    const late = new Promise<string>((resolve) => setTimeout(resolve, ANSWER_MS, 'late').unref());
    const back = new Promise<string>((resolve) => (this.echo = (message) => message === token && resolve('back')));
    void this.commands.publish(this.probeChannel, token).catch(() => {});
    void Promise.race([back, late]).then((answer) => {
      this.echo = undefined;
      if (this.state === 'up') return;
      if (answer !== 'back') {
        // Just connected, the subscriptions may not be in place yet: asked again soon, and only then counted.
        if (this.state === 'connecting') return void setTimeout(() => this.probe(), 100);
        return this.down(new Error('no answer in time'));
      }
      clearTimeout(this.probing);
      this.probing = undefined;
      console.log(`store ${this.shown}: ${this.state === 'down' && this.everUp
        ? 'reachable again: the limits and the chat room are the fleet\'s again' : 'connected'}`);
      this.everUp = true;
      this.state = 'up';
      this.emit('up');
    });
  }

  /** Whether the store answers now. */
  get up(): boolean {
    return this.state === 'up';
  }
}
