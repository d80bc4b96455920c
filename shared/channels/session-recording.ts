// Sessions recorded as asciicast v2 files (what `asciinema rec` writes, and `asciinema play` and asciinema-player
// replay): a line of JSON for the header, then a line for each event, `[seconds, "o", text]` for output and
// `[seconds, "r", "COLSxROWS"]` for a resize. One file a session, in RECORDINGS_DIR, readable by the step's user alone.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { explain, fail, shown } from '../core/errors.ts';

/** Where the recordings are: `RECORDINGS_DIR`, else `recordings/` beside `steps/` (git ignores it); made at start. */
export const recordingsDir = process.env.RECORDINGS_DIR || fileURLToPath(new URL('../../recordings/', import.meta.url));
try {
  mkdirSync(recordingsDir, { recursive: true, mode: 0o700 });
} catch (err) {
  fail(`cannot make the folder ${shown(recordingsDir)} for the recordings: ${explain(err)} (set RECORDINGS_DIR to use another)`);
}

/** A recording's file name: when it started, whose it is, and a random part: `2026-12-04T01-02-03Z-alice-1a2b3c4d.cast`. */
export const recordingName = /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-[A-Za-z0-9_.-]{1,64}-[0-9a-f]{8}\.cast$/;

/** What the header says of a session. */
export interface Recorded {
  user: string;
  width: number;
  height: number;
  /** Where the session went, and what it ran: `localhost:2023: shell`. */
  title: string;
  term?: string | undefined;
}

/**
 * Starts the recording of one session: returns what to call with its output (bytes, as the terminal gets them),
 * with each resize, and at its end. Each event is written as it happens (the file is appended to, not kept in
 * memory); input is not recorded (see the lesson). A file that cannot be written is logged once, and the session
 * goes on unrecorded.
 */
export function startRecording(session: Recorded, logError: (message: string) => void) {
  const started = new Date();
  const user = /^[A-Za-z0-9_.-]{1,64}$/.test(session.user) ? session.user : 'unnamed';
  const name = `${started.toISOString().slice(0, 19).replaceAll(':', '-')}Z-${user}-${randomBytes(4).toString('hex')}.cast`;
  const file: WriteStream = createWriteStream(join(recordingsDir, name), { flags: 'wx', mode: 0o600 });
  file.on('error', (err) => logError(`recording ${name}: ${explain(err)}`));
  const header = {
    version: 2, width: session.width, height: session.height, timestamp: Math.floor(started.getTime() / 1000),
    title: session.title, env: { USER: session.user, ...(session.term ? { TERM: session.term } : {}) },
  };
  file.write(`${JSON.stringify(header)}\n`);
  const text = new StringDecoder('utf8'); // a character cut between two reads waits for its end
  const event = (code: string, data: string) => {
    if (file.destroyed || file.writableEnded) return;
    const seconds = Math.round((Date.now() - started.getTime()) / 1000 * 1e6) / 1e6;
    file.write(`${JSON.stringify([seconds, code, data])}\n`);
  };
  return {
    name,
    output: (data: Buffer) => {
      const chunk = text.write(data);
      if (chunk) event('o', chunk);
    },
    resize: (cols: number, rows: number) => event('r', `${cols}x${rows}`),
    end: () => {
      const rest = text.end();
      if (rest) event('o', rest);
      if (!file.destroyed) file.end();
    },
  };
}
