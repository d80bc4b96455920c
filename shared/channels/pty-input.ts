// What a client types, into a pseudo-terminal no faster than its program reads it (step 14). A terminal holds a few
// KiB of typed input (some 64 KiB when raw), and then takes no more until the program reads. node-pty writes with
// libuv, which writes to a terminal's master side as if it could wait: once the terminal is full, it tries again
// and again at once, and the whole server stops there, for good if the program never reads (a paste into a busy
// program in raw mode is enough). So the step writes itself, and waits when the terminal is full.
import { writeSync } from 'node:fs';

/** How long to wait before trying a full terminal again, in milliseconds. */
const RETRY_MS = 20;
/** The most typed bytes that wait for the terminal: past this the channel is paused, and the client waits. */
export const TYPED_MAX = 64 * 1024;

/** A terminal as node-pty makes it: its master side's file descriptor, and the event once that has closed. */
interface Terminal {
  fd: number;
  on(event: 'close', listener: () => void): void;
}

/** What `typeInto()` returns: `end(text)` types `text` once all before it is in; `stop()` types no more. */
export interface TypedInput {
  end(text: string): void;
  stop(): void;
}

/**
 * Types what `channel` receives into `terminal`, as fast as the terminal takes it; while more than TYPED_MAX bytes
 * wait, the channel is paused. Writes are made here, at once (the master side does not wait), and never once the
 * terminal has closed: the number of a closed file is soon another file's, another user's terminal or connection.
 * So call `stop()` before closing the terminal yourself.
 */
export function typeInto(channel: NodeJS.ReadableStream, terminal: Terminal): TypedInput {
  const waiting: Buffer[] = [];
  let queued = 0;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const flush = (): void => {
    retry = undefined;
    while (!closed && waiting.length > 0) {
      const head = waiting[0]!;
      let written: number;
      try {
        written = writeSync(terminal.fd, head);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') retry = setTimeout(flush, RETRY_MS); // full: not read yet
        else stop(); // the terminal has gone (EIO): nothing more to type
        break;
      }
      queued -= written;
      if (written === head.length) waiting.shift();
      else waiting[0] = head.subarray(written);
    }
    if (channel.isPaused() && queued <= TYPED_MAX / 4) channel.resume();
  };
  const type = (data: Buffer): void => {
    if (closed || data.length === 0) return;
    waiting.push(data);
    queued += data.length;
    if (queued > TYPED_MAX) channel.pause();
    if (!retry) flush();
  };
  const stop = (): void => {
    closed = true;
    clearTimeout(retry);
    waiting.length = 0;
    queued = 0;
  };
  terminal.on('close', stop);
  channel.on('data', type);
  return { end: (text) => type(Buffer.from(text)), stop };
}
