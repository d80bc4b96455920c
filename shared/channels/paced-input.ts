// What clients type, handed on at a pace the server can keep (step 18): a paste is as fast as the client's link,
// and what it costs the server depends on what is pasted. Ink makes an input of each escape sequence, so a
// megabyte of ESC bytes is a million of them, some microseconds each, where a megabyte of letters is a few inputs.

/**
 * What handing on a byte costs, in letters: an ESC begins an input of its own, and Enter, Delete, Backspace and
 * Ctrl-C are keys of their own to the app (a step of its reducer each), some 64 letters' worth of work each.
 */
export const cost = (byte: number) => (byte === 0x1b || byte === 0x0d || byte === 0x7f || byte === 0x08 || byte === 0x03 ? 64 : 1);
/**
 * What is handed on in one turn of the event loop, all sessions together (1024 keys, or 64 KiB of letters): then the
 * loop serves all else. 4096 a turn held other users' requests up for some 40 ms a turn, under a paste into 30 sessions.
 */
export const TURN_COST = 64 * 1024;
/** The least a session with input waiting hands on in its turn: they share TURN_COST, taking turns in a ring. */
export const SHARE_MIN = 64 * 64;
/** The most bytes one session may have waiting: past this its channel is paused, ssh's window closes, and the client waits. */
export const INPUT_QUEUE_MAX = 64 * 1024;

// The local type fix: the patch adds this setting, which @types/ssh2 does not know.
declare module 'ssh2' {
  interface ServerConfig {
    /** The window each channel is given: what a client may send ahead of what is read (ssh2 patch part 032). */
    channelWindow?: number;
  }
}

/**
 * The window for a session's typing (the server's `channelWindow`): what a client may send before the app has taken
 * it. ssh2 gives 2 MiB, and a paused channel holds up to half as much again: 100 sessions pasting grew step 18 by
 * some 580 MiB (with this window, some 80: test/ink-app.test.ts).
 */
export const INPUT_WINDOW = INPUT_QUEUE_MAX;

/** A session's input waiting to be handed on. */
interface Queue {
  channel: NodeJS.ReadableStream;
  into: NodeJS.WritableStream;
  waiting: Buffer[];
  queued: number;
}

/** Each user with input waiting, in the order of their next turns, and their sessions with input waiting, in theirs. */
const ring = new Map<string, Queue[]>();
let scheduled = false;

/**
 * The most of the process's time that what input sets off may take: handing on a key is cheap, but the render it
 * brings is not (at 400x200, tens of milliseconds). After a turn whose input and renders took T ms, the next waits T.
 */
export const INPUT_TIME_SHARE = 1 / 2;

/** The first bytes of `buffer` that cost no more than `budget` (one at least), and what they cost. */
function within(buffer: Buffer, budget: number): [number, number] {
  let spent = 0;
  let end = 0;
  while (end < buffer.length && (end === 0 || spent + cost(buffer[end]!) <= budget)) spent += cost(buffer[end++]!);
  return [end, spent];
}

/** Hands on what `queue` has waiting, up to `budget`; returns what that cost. */
function serve(queue: Queue, budget: number): number {
  let left = budget;
  const parts: Buffer[] = [];
  while (queue.waiting.length && left > 0) {
    const head = queue.waiting[0]!;
    const [end, spent] = within(head, left);
    parts.push(head.subarray(0, end));
    left -= spent;
    queue.queued -= end;
    if (end === head.length) queue.waiting.shift();
    else queue.waiting[0] = head.subarray(end);
  }
  if (parts.length) queue.into.write(Buffer.concat(parts));
  if (queue.channel.isPaused() && queue.queued <= INPUT_QUEUE_MAX / 4) queue.channel.resume();
  return budget - left;
}

/**
 * One turn: each user with input waiting, in order, hands on an equal share of TURN_COST (SHARE_MIN at least) to one
 * of their sessions, the next in their own ring; then the next turn, once the renders this one set off have run.
 */
function turn(): void {
  const begun = performance.now();
  let budget = TURN_COST;
  const share = Math.max(SHARE_MIN, Math.floor(TURN_COST / ring.size));
  for (const [user, queues] of [...ring]) {
    if (budget <= 0) break;
    const queue = queues.shift()!;
    budget -= serve(queue, Math.min(share, budget));
    if (queue.queued > 0) queues.push(queue); // its next turn, after its user's other sessions'
    ring.delete(user);
    if (queues.length) ring.set(user, queues); // the user's next turn, after the other users'
  }
  // What was handed on is read by the apps, and rendered, in the ticks and microtasks after this turn: its cost is
  // known at the next turn of the event loop (with all else that loop did: a busy server takes input more slowly).
  setImmediate(() => {
    const took = performance.now() - begun;
    scheduled = false;
    if (ring.size) schedule(took / INPUT_TIME_SHARE - took);
  });
}

function schedule(wait = 0): void {
  if (scheduled) return;
  scheduled = true;
  if (wait < 1) setImmediate(turn);
  else setTimeout(turn, wait);
}

/**
 * Passes what `channel` (a session of `user`'s) receives to `into` a slice at a time, each turn of the event loop: a
 * session alone takes a turn's worth (TURN_COST); users pasting floods, or typing into many sessions, are served in
 * turn, one session of each a turn, and the server with them: the renders that input sets off take half the
 * process's time at most (INPUT_TIME_SHARE). While more than INPUT_QUEUE_MAX bytes wait, the channel is paused; it
 * reads again once a quarter of that is left. What waits when it closes is dropped.
 */
export function pacedInput(channel: NodeJS.ReadableStream, into: NodeJS.WritableStream, user: string): void {
  const queue: Queue = { channel, into, waiting: [], queued: 0 };
  channel.on('data', (data: Buffer) => {
    if (data.length === 0) return;
    if (queue.queued === 0) { // its first waiting: to the back of its user's ring (a user's first: of the users')
      const queues = ring.get(user);
      if (queues) queues.push(queue);
      else ring.set(user, [queue]);
    }
    queue.waiting.push(data);
    queue.queued += data.length;
    if (queue.queued > INPUT_QUEUE_MAX) channel.pause();
    schedule();
  });
  channel.on('close', () => {
    const queues = ring.get(user) ?? [];
    const at = queues.indexOf(queue);
    if (at !== -1) queues.splice(at, 1);
    if (!queues.length) ring.delete(user);
    queue.waiting.length = 0;
    queue.queued = 0;
  });
}

/** How often the layouts that window-changes ask for are made, */
export const LAYOUT_MS = 50;
/** and how many users' at most each time, one layout each: a full layout of a large screen takes milliseconds. */
export const LAYOUTS_AT_ONCE = 2;

/** Each user with layouts waiting, in the order of their next turns, and theirs: one a session (its latest), in the order asked. */
const layouts = new Map<string, Map<object, () => void>>();
let layoutTimer: NodeJS.Timeout | undefined;

/**
 * The most of the process's time that layouts may take: a layout's cost grows with the screen (one of 400x200 takes
 * tens of milliseconds), so after layouts that took T ms the next turn waits 4 T, LAYOUT_MS at least.
 */
export const LAYOUT_TIME_SHARE = 1 / 5;

/** One turn: the next layout of each of LAYOUTS_AT_ONCE users, in turn. */
function layoutTurn(): void {
  layoutTimer = undefined;
  const begun = performance.now();
  for (const [user, waiting] of [...layouts].slice(0, LAYOUTS_AT_ONCE)) {
    const [session, layout] = waiting.entries().next().value!;
    waiting.delete(session);
    layouts.delete(user);
    if (waiting.size) layouts.set(user, waiting); // the user's next turn, after the other users'
    layout();
  }
  const took = performance.now() - begun;
  if (layouts.size) layoutTimer = setTimeout(layoutTurn, Math.max(LAYOUT_MS, took / LAYOUT_TIME_SHARE - took));
}

/**
 * Makes `layout` (the screen of `session`, one of `user`'s, laid out: its first, or again after a window-change) at
 * a turn of its user's: every LAYOUT_MS, or later after costly layouts (LAYOUT_TIME_SHARE), one layout of each of
 * LAYOUTS_AT_ONCE users, in turn, and of each user's sessions in turn, each session's latest. A storm of
 * window-changes is one layout a turn, and storms in many sessions take turns, however many there are; another
 * user's first screen waits for a turn or two, not for them. `undefined` drops what `session` asked for (it has gone).
 */
export function pacedLayout(session: object, user: string, layout: (() => void) | undefined): void {
  const waiting = layouts.get(user);
  if (!layout) {
    waiting?.delete(session);
    if (waiting?.size === 0) layouts.delete(user);
    return;
  }
  if (waiting) waiting.set(session, layout); // a session already waiting keeps its place
  else layouts.set(user, new Map([[session, layout]]));
  layoutTimer ??= setTimeout(layoutTurn, LAYOUT_MS);
}
