// A hostile client's tools, for the attack tests (attacks.test.ts) and the bench's figures under attack: ssh2's
// client protocol object, to send what OpenSSH never would, and the attacks that more than one place runs.
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';

/** The client side of ssh2's protocol object (ssh2's types do not describe it). */
export interface RawProtocol {
  authPK(username: string, publicKey: string, keyAlgo: string, sign: (data: Buffer, done: (signature: Buffer) => void) => void): void;
  session(chan: number, window: number, packetSize: number): void;
  pty(chan: number, rows: number, cols: number, height: number, width: number, term: string, modes: null,
    wantReply: boolean): void;
  windowChange(chan: number, rows: number, cols: number, height: number, width: number): void;
  shell(chan: number, wantReply: boolean): void;
  exec(chan: number, command: string, wantReply: boolean): void;
  env(chan: number, key: string, value: string, wantReply: boolean): void;
  signal(chan: number, name: string): void;
  channelData(chan: number, data: Buffer): void;
  channelEOF(chan: number): void;
  channelClose(chan: number): void;
  channelWindowAdjust(chan: number, amount: number): void;
}

export const raw = (client: ssh2.Client) => (client as unknown as { _protocol: RawProtocol })._protocol;
export const socketOf = (client: ssh2.Client) => (client as unknown as { _sock: Socket })._sock;
/** ssh2's handlers of what the server sends, by message name (replaceable: ssh2's types do not describe them). */
export const handlersOf = (client: ssh2.Client) =>
  (raw(client) as unknown as { _handlers: Record<string, (...args: unknown[]) => void> })._handlers;

/**
 * Opens a session channel that ssh2's client does not know of (its number here 1000), with the window and packet
 * size given, and resolves with the server's number for it once confirmed: what the server sends on it is for the
 * caller's own CHANNEL_DATA handler, and ssh2 never adjusts its window.
 */
export function rawSession(client: ssh2.Client, window: number, packetSize = 32 * 1024): Promise<number> {
  const handlers = handlersOf(client);
  const original = handlers.CHANNEL_OPEN_CONFIRMATION!;
  return new Promise((resolve) => {
    handlers.CHANNEL_OPEN_CONFIRMATION = (protocol, info) => {
      const { recipient, sender } = info as { recipient: number; sender: number };
      if (recipient !== 1000) return original(protocol, info);
      handlers.CHANNEL_OPEN_CONFIRMATION = original;
      resolve(sender);
    };
    raw(client).session(1000, window, packetSize);
  });
}

/** The server's number for a channel the client opened (ssh2 keeps it; its types do not say so). */
export const remoteId = (channel: ssh2.ClientChannel) => (channel as unknown as { outgoing: { id: number } }).outgoing.id;

/** A process's resident memory (VmRSS), in MiB. */
export function residentMiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** Samples a process's resident memory every 100 ms while `attack` runs; resolves with the highest, in MiB. */
export async function peakDuring(pid: number, attack: () => Promise<unknown>): Promise<number> {
  let peak = residentMiB(pid);
  const timer = setInterval(() => (peak = Math.max(peak, residentMiB(pid))), 100);
  try {
    await attack();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, residentMiB(pid));
}

/** Opens a shell (no pty) on a logged-in client. */
export function shell(client: ssh2.Client): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.shell(false, (err, stream) => (err ? reject(err) : resolve(stream))));
}

/** Runs a command on a logged-in client. */
export function exec(client: ssh2.Client, command: string): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel))));
}

/**
 * Sends up to `total` bytes on the channel as the server's window allows, never reading what comes back: `chunk`
 * again and again, by default 64 KiB of zero bytes, which an echo of shown bytes (step 05) sends back four times
 * over. Stops when the server has taken nothing for `stallMs`; resolves with the bytes the server took.
 */
export async function sendWithoutReading(channel: ssh2.ClientChannel, total: number, stallMs = 2000,
  chunk = Buffer.alloc(64 * 1024, 0)): Promise<number> {
  let taken = 0;
  while (taken < total && !channel.destroyed) {
    const done = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), stallMs);
      channel.write(chunk, () => (clearTimeout(timer), resolve(true)));
    });
    if (!await done) break;
    taken += chunk.length;
  }
  return taken;
}

/**
 * Sends `total` bytes on the channel, never reading what comes back, and ignoring the window the server gave: as
 * fast as the socket takes them. Resolves with the bytes the socket wrote.
 */
export async function flood(client: ssh2.Client, channel: ssh2.ClientChannel, total: number): Promise<number> {
  const chunk = Buffer.alloc(32 * 1024 - 1, 0);
  const socket = socketOf(client);
  const before = socket.bytesWritten;
  const closed = new Promise((resolve) => socket.once('close', resolve));
  for (let sent = 0; sent < total && socket.writable; sent += chunk.length) {
    raw(client).channelData(remoteId(channel), chunk);
    if (socket.writableLength > 8 * 1024 * 1024) {
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
    }
  }
  return socket.bytesWritten - before;
}

/**
 * On a logged-in client: a session with a pty of 4,294,967,295 x 4,294,967,295, a shell, then `count`
 * window-changes of about that size, never reading what the server draws. Assumes the session gets the server's
 * channel number 0 (the first channel on the connection).
 */
export async function ptyStorm(client: ssh2.Client, count: number): Promise<void> {
  const proto = raw(client);
  proto.session(7, 2 ** 21, 32768);
  proto.pty(0, 0xffffffff, 0xffffffff, 0, 0, 'xterm', null, false);
  proto.shell(0, false);
  for (let i = 0; i < count; i++) {
    proto.windowChange(0, 0xffffffff - i, 0xffffffff - i, 0, 0);
    // Pacing, not waiting for anything: ten at a time, a thousand a second.
    if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A connection from `localAddress` that sends half a version line and then nothing, holding a startup place. */
export function slotHolder(port: number, localAddress: string) {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => {});
  socket.once('connect', () => socket.write('SSH-2.0-'));
  let received = '';
  socket.on('data', (chunk) => (received += chunk));
  return { socket, received: () => received };
}

/**
 * Asks for `count` remote forwards (`ssh -R 0:...`) at once, in one burst, before any can have been granted;
 * resolves with the ports the server granted. Each request not answered within 10 s counts as a refusal.
 */
export async function remoteForwardBurst(client: ssh2.Client, count: number): Promise<number[]> {
  const results = await Promise.allSettled(Array.from({ length: count }, () => new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer')), 10_000);
    client.forwardIn('127.0.0.1', 0, (err, port) => (clearTimeout(timer), err ? reject(err) : resolve(port)));
  })));
  return results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
}

/**
 * What once made a chat room's line editor quadratic and unbounded: four 32 KiB reads of nothing but ESC, then
 * ESC [ and `digits` bytes of digits with no final byte. Resolves once the server has taken it all.
 */
export async function escapeFlood(channel: ssh2.ClientChannel, digits = 4 * 1024 * 1024): Promise<void> {
  for (let i = 0; i < 4; i++) channel.write(Buffer.alloc(32 * 1024, 0x1b));
  channel.write('\x1b[');
  for (let sent = 0; sent < digits; sent += 32 * 1024) channel.write(Buffer.alloc(32 * 1024, '1'));
  if (channel.writableLength > 0) await new Promise((resolve) => channel.once('drain', resolve));
}
