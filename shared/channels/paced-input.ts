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

/** The sessions with input waiting, in the order of their next turns. */
const ring: Queue[] = [];
let scheduled = false;

/** The first bytes of `buffer` that cost no more than `budget` (one at least), and what they cost. */
function within(buffer: Buffer, budget: number): [number, number] {
  let spent = 0;
  let end = 0;
  while (end < buffer.length && (end === 0 || spent + cost(buffer[end]!) <= budget)) spent += cost(buffer[end++]!);
  return [end, spent];
}

/** One turn: an equal share of TURN_COST (SHARE_MIN at least) for each session in the ring, in order; then the next. */
function turn(): void {
  scheduled = false;
  let budget = TURN_COST;
  const share = Math.max(SHARE_MIN, Math.floor(TURN_COST / ring.length));
  for (let served = ring.length; served > 0 && budget > 0; served--) {
    const queue = ring.shift()!;
    let left = Math.min(share, budget);
    const parts: Buffer[] = [];
    while (queue.waiting.length && left > 0) {
      const head = queue.waiting[0]!;
      const [end, spent] = within(head, left);
      parts.push(head.subarray(0, end));
      left -= spent;
      budget -= spent;
      queue.queued -= end;
      if (end === head.length) queue.waiting.shift();
      else queue.waiting[0] = head.subarray(end);
    }
    if (parts.length) queue.into.write(Buffer.concat(parts));
    if (queue.channel.isPaused() && queue.queued <= INPUT_QUEUE_MAX / 4) queue.channel.resume();
    if (queue.queued > 0) ring.push(queue); // its next turn, after the others'
  }
  if (ring.length) schedule();
}

function schedule(): void {
  if (!scheduled) (scheduled = true, setImmediate(turn));
}

/**
 * Passes what `channel` receives to `into` a slice at a time, each turn of the event loop (setImmediate): a session
 * alone takes a turn's worth (TURN_COST); sessions pasting floods together are served in turn, and the server with
 * them. While more than INPUT_QUEUE_MAX bytes wait, the channel is paused; it reads again once a quarter of that is
 * left. What waits when it closes is dropped.
 */
export function pacedInput(channel: NodeJS.ReadableStream, into: NodeJS.WritableStream): void {
  const queue: Queue = { channel, into, waiting: [], queued: 0 };
  channel.on('data', (data: Buffer) => {
    if (data.length === 0) return;
    if (queue.queued === 0) ring.push(queue);
    queue.waiting.push(data);
    queue.queued += data.length;
    if (queue.queued > INPUT_QUEUE_MAX) channel.pause();
    schedule();
  });
  channel.on('close', () => {
    const at = ring.indexOf(queue);
    if (at !== -1) ring.splice(at, 1);
    queue.waiting.length = 0;
    queue.queued = 0;
  });
}

/** How often the layouts that window-changes ask for are made, */
export const LAYOUT_MS = 50;
/** and how many of all sessions' at most each time: a full layout of a large screen takes milliseconds. */
export const LAYOUTS_AT_ONCE = 2;

/** The layouts waiting, one a session (its latest), in the order the sessions first asked. */
const layouts = new Map<object, () => void>();
let layoutTimer: NodeJS.Timeout | undefined;

/**
 * The most of the process's time that layouts may take: a layout's cost grows with the screen (one of 400x200 takes
 * tens of milliseconds), so after layouts that took T ms the next turn waits 4 T, LAYOUT_MS at least.
 */
export const LAYOUT_TIME_SHARE = 1 / 5;

function layoutTurn(): void {
  layoutTimer = undefined;
  const begun = performance.now();
  let made = 0;
  for (const [session, layout] of layouts) {
    if (made++ === LAYOUTS_AT_ONCE) break;
    layouts.delete(session);
    layout();
  }
  const took = performance.now() - begun;
  if (layouts.size) layoutTimer = setTimeout(layoutTurn, Math.max(LAYOUT_MS, took / LAYOUT_TIME_SHARE - took));
}

/**
 * Makes `layout` (a session's screen laid out again, after a window-change) at the next turn: every LAYOUT_MS, or
 * later after costly layouts (LAYOUT_TIME_SHARE), the layouts of LAYOUTS_AT_ONCE sessions at most, each session's
 * latest, in the order they asked. A storm of
 * window-changes is one layout a turn, and storms in many sessions take turns, however many there are. `undefined`
 * drops what `session` asked for (it has gone).
 */
export function pacedLayout(session: object, layout: (() => void) | undefined): void {
  if (!layout) return void layouts.delete(session);
  layouts.set(session, layout); // a session already waiting keeps its place
  layoutTimer ??= setTimeout(layoutTurn, LAYOUT_MS);
}
