// Step 21's chat room, kept in the store so that it spans every machine of a fleet: what is said is published on
// one channel that every machine subscribes to, and who is online is a sorted set whose entries each machine
// renews every few seconds; a machine that dies stops renewing, and its people leave the list by themselves.
// With the store unreachable, the room is this machine's alone until it answers again.
import { safe } from '../core/log.ts';
import type { Store } from '../core/store.ts';

/** What happens in the room, as it goes through the store: made safe to show by the machine that shows it. */
export type RoomEvent = ({ kind: 'joined' | 'left'; name: string } | { kind: 'said'; name: string; text: string })
  & { machine: string; id?: string };

/** The line that shows `event`, made safe as step 13 makes what people say safe (shared/core/log.ts's safe()). */
function lineOf(event: RoomEvent): string {
  return event.kind === 'said' ? `${safe(event.name)}: ${safe(event.text)}` : `* ${safe(event.name)} ${event.kind}`;
}

const CHANNEL = 'room';
const ONLINE = 'room:online';
/** How often each machine renews its people's entries, and how long an entry lasts unrenewed, in ms. */
const RENEW_MS = 5000;
const LASTS_MS = 15_000;
/** The most people /who lists, and the longest name or message taken from the store. */
const MAX_LISTED = 100;
const MAX_FIELD = 10_000;
/** How long a line shown here while the store hung waits for its own copy from the store, to drop it, in ms. */
const ECHO_MS = 60_000;
/** The most such lines, and the most departures the store has not yet heard of, kept at once. */
const MAX_PENDING = 10_000;

const NOW = `local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)`;
// ARGV: how long an entry lasts (ms), then the entries to add or renew. Drops the entries nobody renewed.
const RENEW = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`;
// ARGV: the most entries to return. Returns the count, then the entries.
const WHO = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local entries = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
table.insert(entries, 1, redis.call('ZCARD', KEYS[1]))
return entries`;
const LEAVE = `return redis.call('ZREM', KEYS[1], ARGV[1])`;

const field = (value: unknown): value is string => typeof value === 'string' && value.length <= MAX_FIELD;

/** An event read from the store, or undefined if it is not one the room sends (from anyone who can publish there). */
function parseEvent(message: string): RoomEvent | undefined {
  try {
    const event = JSON.parse(message) as Record<string, unknown>;
    const id = field(event.id) ? event.id : undefined;
    if ((event.kind === 'joined' || event.kind === 'left') && field(event.name) && field(event.machine)) {
      return { kind: event.kind, name: event.name, machine: event.machine, id };
    }
    if (event.kind === 'said' && field(event.name) && field(event.text) && field(event.machine)) {
      return { kind: 'said', name: event.name, text: event.text, machine: event.machine, id };
    }
  } catch {
    // not JSON: dropped
  }
  return undefined;
}

/**
 * The room, for the people on this machine (`machine`): `deliver` is called with the line that shows each event
 * anyone in the fleet sends, and with a notice when the room becomes local-only and when it spans the fleet again.
 */
export class FleetRoom {
  private readonly here = new Map<number, string>(); // this machine's people: their entries in the store
  private count = 0;
  private sent = 0;
  /** Lines shown here alone because the store did not answer, by id: the store may still pass them on, late. */
  private readonly shownHere = new Map<string, number>();
  /** Entries of people who left while the store did not answer: taken off the list when it answers again. */
  private readonly departures = new Set<string>();
  private readonly store: Store;
  private readonly machine: string;
  private readonly deliver: (line: string) => void;

  constructor(store: Store, machine: string, deliver: (line: string) => void) {
    this.store = store;
    this.machine = machine;
    this.deliver = deliver;
    store.subscribe(CHANNEL, (message) => {
      const event = parseEvent(message);
      if (event && !(event.id !== undefined && this.shownHere.delete(event.id))) deliver(lineOf(event));
    });
    store.on('down', () => deliver(`* the store is unreachable: this room is local-only (${machine}) until it returns`));
    store.on('up', () => {
      void this.renew();
      for (const entry of this.departures) void this.leave(entry);
      deliver('* the store is back: the room spans the fleet again');
    });
    setInterval(() => void this.renew(), RENEW_MS).unref();
  }

  /** Whether the room is this machine's alone now (the store is unreachable). */
  get localOnly(): boolean {
    return !this.store.up;
  }

  /**
   * Sends `event` to everyone in the room: through the store, or to this machine alone when it is unreachable. A
   * call that was not answered in time may still reach the store (a hung store runs it when it wakes): the line is
   * shown here at once, and its copy from the store, if one comes, is dropped. The others see it late, or never.
   */
  send(event: { kind: 'joined' | 'left'; name: string } | { kind: 'said'; name: string; text: string }): void {
    const full: RoomEvent = { ...event, machine: this.machine, id: `${this.machine}/${process.pid}/${this.sent++}` };
    void this.store.publish(CHANNEL, JSON.stringify(full)).then((sent) => {
      if (sent) return;
      const now = Date.now();
      for (const [id, at] of this.shownHere) {
        if (now - at < ECHO_MS && this.shownHere.size < MAX_PENDING) break;
        this.shownHere.delete(id); // the oldest first
      }
      this.shownHere.set(full.id!, now);
      this.deliver(lineOf(full));
    });
  }

  /** Puts `name` on the list of who is online, as on this machine; returns what takes them off it. */
  arrive(name: string): () => void {
    const id = this.count++;
    const entry = JSON.stringify([this.machine, process.pid, id, name]);
    this.here.set(id, entry);
    void this.store.script(RENEW, [ONLINE], [LASTS_MS, entry]);
    return () => {
      if (this.here.delete(id)) void this.leave(entry);
    };
  }

  /** Takes `entry` off the list; if the store does not answer, again when it does (a renewal may yet run late). */
  private async leave(entry: string): Promise<void> {
    const answered = await this.store.script(LEAVE, [ONLINE], [entry]) !== undefined;
    if (answered) this.departures.delete(entry);
    else if (this.departures.size < MAX_PENDING) this.departures.add(entry);
  }

  /**
   * Who is online, in the whole fleet: how many, and a line that lists them (`* here: alice (a), bob (b)`), made
   * safe to show. When the store is unreachable, or has not answered within `waitMs` (a login's welcome waits
   * LOGIN_WAIT_MS), this machine's people alone, and `notes` says so.
   */
  async who(waitMs?: number): Promise<{ count: number; line: string; notes: string[] }> {
    const answer = await this.store.script(WHO, [ONLINE], [MAX_LISTED], waitMs);
    const local = !Array.isArray(answer);
    const [total, ...entries] = local ? [this.here.size, ...this.here.values()] : answer as [number, ...string[]];
    const online = entries.slice(0, MAX_LISTED).flatMap((entry) => {
      try {
        const [machine, , , name] = JSON.parse(entry) as unknown[];
        return field(machine) && field(name) ? [`${safe(name)} (${safe(machine)})`] : [];
      } catch {
        return []; // not an entry the room wrote
      }
    });
    online.sort(); // by name, then machine
    const more = total - online.length > 0 ? `, and ${total - online.length} more` : '';
    const notes = !local ? [] : this.store.up ? [`* the store is slow to answer: only this machine's people are counted (${this.machine})`]
      : [`* the store is unreachable: this room is local-only (${this.machine})`];
    return { count: total, line: `* here: ${online.join(', ')}${more}`, notes };
  }

  /** Renews this machine's entries, so that they do not expire while its people are here. */
  private async renew(): Promise<void> {
    if (this.here.size > 0) await this.store.script(RENEW, [ONLINE], [LASTS_MS, ...this.here.values()]);
  }
}
