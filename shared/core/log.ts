// The server's log: one line an event, on standard output, starting with the client's address.
//
// Clients choose some of what is logged (a disconnect message, a user name, an error's text), so every message is
// made safe first: control characters and Unicode direction overrides are escaped, so no client can start a line
// of its own or hide text; each message is cut at MAX_MESSAGE characters; and a message that repeats from one
// connection is printed once, then counted.

const MAX_MESSAGE = 300;
const MAX_REMEMBERED = 10_000;
/** Line and paragraph separators, and the controls of text direction. */
const SEPARATORS_AND_DIRECTION = /[\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]/u;
/** Any character that safe() writes otherwise: those, a backslash, and control characters. */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\\\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]/u;

/** For each connection: its last message and how many times it came again since it was printed. */
const last = new Map<string, { message: string; repeats: number }>();

/**
 * Prints `127.0.0.1:51848 MESSAGE` (or `[::1]:51848 MESSAGE`), naming the connection the line is about. The same
 * message again from the same connection is not printed; the next different one (or the connection's close)
 * first says `(previous message repeated N more times)`.
 */
export function log(from: { ip?: string | undefined; port?: number | undefined }, message: string): void {
  const who = address(from.ip, from.port);
  const text = safe(message);
  const previous = last.get(who);
  if (previous?.message === text) {
    previous.repeats += 1;
    return;
  }
  // Straight to the stream: console.log would first look through each line for format specifiers such as %s.
  if (previous && previous.repeats > 0) {
    process.stdout.write(`${who} (previous message repeated ${previous.repeats} more times)\n`);
  }
  process.stdout.write(`${who} ${text}\n`);
  // Forgotten when the connection closes; a line that comes after that (a channel's own close) is kept until the
  // map holds MAX_REMEMBERED connections, oldest out first.
  last.delete(who);
  if (text !== 'connection closed') last.set(who, { message: text, repeats: 0 });
  if (last.size > MAX_REMEMBERED) last.delete(last.keys().next().value!);
}

/** `127.0.0.1:2022`, or `[::1]:2022` for an IPv6 address. */
export function address(host: string | undefined, port: number | undefined): string {
  const name = host ?? 'unknown';
  return `${name.includes(':') ? `[${name}]` : name}:${port ?? '?'}`;
}

/**
 * A message fit for one log line: control characters (C0, DEL, C1), line and paragraph separators and
 * bidirectional controls written as `\xNN` or `\u{NNNN}`, a backslash as `\\`, and at most MAX_MESSAGE characters
 * of the original, then `... (N more characters)`.
 */
export function safe(message: string): string {
  // Most messages need nothing done: returned as they are, not gone through character by character.
  if (message.length <= MAX_MESSAGE && !UNSAFE.test(message)) return message;
  const chars = [...message];
  const kept = chars.length > MAX_MESSAGE ? chars.slice(0, MAX_MESSAGE) : chars;
  let text = '';
  for (const char of kept) {
    const code = char.codePointAt(0)!;
    if (char === '\\') text += '\\\\';
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) text += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (SEPARATORS_AND_DIRECTION.test(char)) {
      text += `\\u{${code.toString(16)}}`;
    } else text += char;
  }
  const more = chars.length - kept.length;
  return more > 0 ? `${text}... (${more} more character${more === 1 ? '' : 's'})` : text;
}
