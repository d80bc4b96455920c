// The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in front of the step writes one header before
// the client's bytes, saying whose connection it carries. Without it every client would look like the balancer.
import { isIP, type Socket } from 'node:net';

/** Where a connection really comes from: the client's address and port, as the balancer saw them. */
export interface Origin {
  ip: string;
  port: number;
}

/**
 * What a header said: the client's origin; `local` for a connection the balancer made itself (a health check:
 * v2's LOCAL, v1's UNKNOWN, or an address family other than TCP over IPv4 or IPv6), which is the balancer's own;
 * or why it is no header.
 */
export type Header = { origin: Origin; length: number } | { local: true; length: number } | { error: string };

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
/** The longest header taken: v1 allows 107 bytes; a v2 header this long holds the addresses and a few TLVs. */
export const MAX_HEADER = 1024;

const port = (text: string) => (/^(0|[1-9]\d{0,4})$/.test(text) && Number(text) < 65536 ? Number(text) : undefined);

/**
 * Reads a PROXY header from the start of `bytes`. Returns undefined while the bytes could still become a header
 * (more must be read); otherwise the header and its length, or an error saying what is wrong.
 */
export function parseHeader(bytes: Buffer): Header | undefined {
  if (bytes.length === 0) return undefined;
  // Version 2: the signature, then version and command, family, length, addresses.
  if (bytes[0] === V2_SIGNATURE[0]) {
    const signature = bytes.subarray(0, V2_SIGNATURE.length);
    if (!signature.equals(V2_SIGNATURE.subarray(0, signature.length))) return { error: 'not a PROXY header' };
    if (bytes.length < 16) return undefined;
    const [versionCommand, family] = [bytes[12]!, bytes[13]!];
    const length = 16 + bytes.readUInt16BE(14);
    if (versionCommand >> 4 !== 2) return { error: `a PROXY v2 header of version ${versionCommand >> 4}` };
    if (length > MAX_HEADER) return { error: `a PROXY v2 header of ${length} bytes (at most ${MAX_HEADER} are taken)` };
    if (bytes.length < length) return undefined;
    const command = versionCommand & 0x0f;
    if (command === 0) return { local: true, length };
    if (command !== 1) return { error: `a PROXY v2 header with command ${command}` };
    const body = bytes.subarray(16, length);
    if (family === 0x11 && body.length >= 12) {
      return { origin: { ip: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) }, length };
    }
    if (family === 0x21 && body.length >= 36) {
      const groups = Array.from({ length: 8 }, (_, i) => body.readUInt16BE(2 * i).toString(16));
      return { origin: { ip: shortIPv6(groups), port: body.readUInt16BE(32) }, length };
    }
    if (family === 0x11 || family === 0x21) return { error: 'a PROXY v2 header too short for its addresses' };
    return { local: true, length }; // UDP, UNIX sockets, or unspecified: not a TCP client's address
  }
  // Version 1: one line of text, `PROXY TCP4 SOURCE DESTINATION SPORT DPORT\r\n`.
  const start = 'PROXY ';
  const head = bytes.subarray(0, start.length).toString('latin1');
  if (!start.startsWith(head)) return { error: 'not a PROXY header' };
  const end = bytes.indexOf('\r\n');
  if (end === -1) return bytes.length < 107 ? undefined : { error: 'a PROXY v1 header longer than 107 bytes' };
  if (end + 2 > 107) return { error: 'a PROXY v1 header longer than 107 bytes' };
  const words = bytes.subarray(0, end).toString('latin1').split(' ');
  if (words[1] === 'UNKNOWN') return { local: true, length: end + 2 };
  const [, family, source, destination, sourcePort, destinationPort] = words;
  const version = family === 'TCP4' ? 4 : family === 'TCP6' ? 6 : 0;
  if (words.length !== 6 || !version || isIP(source ?? '') !== version || isIP(destination ?? '') !== version
    || port(sourcePort ?? '') === undefined || port(destinationPort ?? '') === undefined) {
    return { error: `a malformed PROXY v1 header (${JSON.stringify(bytes.subarray(0, Math.min(end, 60)).toString('latin1'))})` };
  }
  return { origin: { ip: source!, port: port(sourcePort!)! }, length: end + 2 };
}

/** An IPv6 address from its eight groups, shortened as Node writes addresses (`::1`, `2001:db8::5`). */
function shortIPv6(groups: string[]): string {
  let best = { at: -1, length: 0 };
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.length && j - i > 1) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.at === -1) return groups.join(':');
  const text = `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.length).join(':')}`;
  // An IPv4 address carried in IPv6 (::ffff:192.0.2.1), as Node shows a mapped address.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (!mapped) return text;
  const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return `::ffff:${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/**
 * Reads the PROXY header a balancer sends first on `socket`, within `ms` milliseconds, and puts back whatever
 * came after it, for SSH to read. Resolves to the client's origin the header gives; to `health check` for a
 * connection of the balancer's own (a LOCAL header, or closed before a byte), which is no client's; or to an error.
 */
export function readHeader(socket: Socket, ms: number): Promise<Origin | 'health check' | { error: string }> {
  return new Promise((resolve) => {
    let read = Buffer.alloc(0);
    const finish = (result: Origin | 'health check' | { error: string }, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).off('error', onEnd).off('close', onEnd);
      socket.pause();
      if (rest?.length) socket.unshift(rest);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      read = Buffer.concat([read, chunk]);
      const header = parseHeader(read);
      if (!header) return;
      if ('error' in header) return finish(header);
      finish('origin' in header ? header.origin : 'health check', read.subarray(header.length));
    };
    const onEnd = () => finish(read.length ? { error: 'the connection ended inside its PROXY header' } : 'health check');
    const timer = setTimeout(() => finish({ error: `no PROXY header within ${ms / 1000} s` }), ms);
    socket.on('data', onData).on('end', onEnd).on('error', onEnd).on('close', onEnd);
  });
}
