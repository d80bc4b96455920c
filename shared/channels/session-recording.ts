// Sessions recorded as asciicast v2 files (what `asciinema rec` writes, and `asciinema play` and asciinema-player
// replay): a line of JSON for the header, then a line for each event, `[seconds, "o", text]` for output and
// `[seconds, "r", "COLSxROWS"]` for a resize. One file a session, in RECORDINGS_DIR, readable by the step's user alone.
import { createWriteStream, mkdirSync, readdirSync, type WriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { explain, fail, shown } from '../core/errors.ts';
import { limits } from '../core/options.ts';

/** Where the recordings are: `RECORDINGS_DIR`, else `recordings/` beside `steps/` (git ignores it); made at start. */
export const recordingsDir = process.env.RECORDINGS_DIR || fileURLToPath(new URL('../../recordings/', import.meta.url));
try {
  mkdirSync(recordingsDir, { recursive: true, mode: 0o700 });
} catch (err) {
  fail(`cannot make the folder ${shown(recordingsDir)} for the recordings: ${explain(err)} (set RECORDINGS_DIR to use another)`);
}

/** A recording's file name: when it started, whose it is, and a random part: `2026-12-04T01-02-03Z-alice-1a2b3c4d.cast`. */
export const recordingName = /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-[A-Za-z0-9_.-]{1,64}-[0-9a-f]{8}\.cast$/;

/** The longest title, user and terminal name a header keeps: a header stays under 1 KiB, whatever the client sent. */
const HEADER_TEXT_MAX = 200;
const cut = (text: string) => (text.length > HEADER_TEXT_MAX ? `${text.slice(0, HEADER_TEXT_MAX - 1)}…` : text);

/** What recordingsFull() and startRecording() are given of a session: its channel, whose end and close they hear. */
type Session = { once(event: 'close' | 'finish', listener: () => void): Session };

/**
 * Why no session of `user`'s may start now, if none may: RECORDINGS_DIR holds RECORDINGS_MAX recordings already, or
 * RECORDINGS_PER_USER of theirs (a session that cannot be recorded is not started; one user's sessions do not use
 * up everyone's room), or cannot be read. When one may, `session` counts as a recording from then on, until its own
 * starts (startRecording() is given it) or it ends without one: a user's sessions are recorded only once logged in
 * onward, one at a time, and a burst of them asked for at once would each find the folder as it was before it.
 */
export function recordingsFull(user: string, session: Session): string | undefined {
  const kept = new Set(writing);
  try {
    for (const name of readdirSync(recordingsDir)) if (recordingName.test(name)) kept.add(name);
  } catch (err) {
    return `the recordings folder cannot be read: ${explain(err)}`;
  }
  const all = kept.size + starting.size;
  if (all >= limits.recordingsMax) {
    return `the recordings folder holds ${all} recordings, with sessions under way (RECORDINGS_MAX): none can be added`;
  }
  const name = fileUser(user);
  const theirs = [...kept].filter((file) => file.slice(21, -14) === name).length
    + [...starting.values()].filter((each) => each === name).length;
  if (theirs >= limits.recordingsPerUser) {
    return `the recordings folder holds ${theirs} recordings of ${name}'s, with sessions under way (RECORDINGS_PER_USER): none of theirs can be added`;
  }
  starting.set(session, name);
  // Its end: the step ended it (refused, or done), or the client closed it; its close alone, when the client is gone.
  session.once('finish', () => starting.delete(session)).once('close', () => starting.delete(session));
  return undefined;
}

/** The sessions that recordingsFull() let start and whose recording has not begun: whose each is (as file names say). */
const starting = new Map<Session, string>();
/** The recordings being written, by file name, until their file has closed (until then it may not be in the folder). */
const writing = new Set<string>();

/** As many NUL bytes as a channel's packet holds, to compare a chunk with (a native compare, not a loop). */
const ZEROS = Buffer.alloc(64 * 1024);

/** A user's name as recordings' file names hold it. */
const fileUser = (user: string) => (/^[A-Za-z0-9_.-]{1,64}$/.test(user) ? user : 'unnamed');

/** What the header says of a session. */
export interface Recorded {
  user: string;
  width: number;
  height: number;
  /** Where the session went, and what it ran: `localhost:2023: shell`. */
  title: string;
  term?: string | undefined;
  /** The command it ran, if it ran one: kept whole, in a marker at its start (a title is cut short). */
  command?: string | undefined;
}

/**
 * Starts the recording of one session: returns what to call with its output (bytes, as the terminal gets them),
 * with its input (for a session without a terminal, which echoes nothing: see the lesson), with each resize, and at
 * its end. Each event is written as it happens (the file is appended to, not kept in memory). The header's texts
 * are cut short, NUL bytes (which a terminal ignores) are left out, and past RECORDING_MAX MiB the recording ends
 * with a marker that says so; `note` is told that, and a file that cannot be written (the session then goes on
 * unrecorded). `channel`, the session's that recordingsFull() counted: its recording now counts in its place.
 */
export function startRecording(session: Recorded, note: (message: string) => void, channel?: Session) {
  const started = new Date();
  const user = fileUser(session.user);
  const name = `${started.toISOString().slice(0, 19).replaceAll(':', '-')}Z-${user}-${randomBytes(4).toString('hex')}.cast`;
  const file: WriteStream = createWriteStream(join(recordingsDir, name), { flags: 'wx', mode: 0o600 });
  writing.add(name);
  if (channel) starting.delete(channel); // counted by its file from now on
  file.once('close', () => writing.delete(name));
  file.on('error', (err) => note(`recording ${name}: ${explain(err)}`));
  const header = {
    version: 2, width: session.width, height: session.height, timestamp: Math.floor(started.getTime() / 1000),
    title: cut(session.title), env: { USER: cut(session.user), ...(session.term ? { TERM: cut(session.term) } : {}) },
  };
  const most = limits.recordingMax * 1024 * 1024;
  let written = 0;
  const write = (line: string) => {
    written += Buffer.byteLength(line);
    file.write(line);
  };
  write(`${JSON.stringify(header)}\n`);
  // The whole command: the title shows its start, and a command padded past that would hide the rest of it.
  if (session.command !== undefined) write(`${JSON.stringify([0, 'm', `command: ${session.command.replaceAll('\0', '')}`])}\n`);
  const text = new StringDecoder('utf8'); // a character cut between two reads waits for its end
  const typed = new StringDecoder('utf8');
  /** A chunk's text, NUL bytes left out: a chunk of nothing else (a flood of them) is not even decoded. */
  const decoded = (decoder: StringDecoder, data: Buffer) => {
    if (data.length <= ZEROS.length && data.equals(ZEROS.subarray(0, data.length))) return '';
    const chunk = decoder.write(data);
    return data.includes(0) ? chunk.replaceAll('\0', '') : chunk;
  };
  const event = (code: string, data: string) => {
    if (file.destroyed || file.writableEnded) return;
    const seconds = Math.round((Date.now() - started.getTime()) / 1000 * 1e6) / 1e6;
    const line = `${JSON.stringify([seconds, code, data])}\n`;
    if (written + Buffer.byteLength(line) <= most) return write(line);
    const why = `recording cut at ${limits.recordingMax} MiB (RECORDING_MAX): the rest of the session is not recorded`;
    file.end(`${JSON.stringify([seconds, 'm', why])}\n`);
    note(`recording ${name}: ${why}`);
  };
  return {
    name,
    output: (data: Buffer) => {
      const chunk = decoded(text, data);
      if (chunk) event('o', chunk);
    },
    input: (data: Buffer) => {
      const chunk = decoded(typed, data);
      if (chunk) event('i', chunk);
    },
    resize: (cols: number, rows: number) => event('r', `${cols}x${rows}`),
    end: () => {
      const rest = text.end().replaceAll('\0', '');
      if (rest) event('o', rest);
      const typedRest = typed.end().replaceAll('\0', '');
      if (typedRest) event('i', typedRest);
      if (!file.destroyed) file.end();
    },
  };
}
