// shared/server/proxy-protocol.ts and its use in shared/server/listen.ts: PROXY headers, v1 and v2, read whole or refused, and
// the client's real address used by a step (the log, the limits), from raw sockets that write what they like.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { MAX_HEADER, parseHeader } from '../shared/server/proxy-protocol.ts';
import { count, logged, useStep, waitFor } from './helpers.ts';

/** Logs in as alice through ssh2's client over `socket` (which has had its PROXY header), and ends. */
async function loginOver(socket: Socket): Promise<void> {
  const client = new ssh2.Client();
  client.on('error', () => {}); // (a reset after the end, say: the login is what is checked, by 'ready')
  const ready = once(client, 'ready'); // rejects on an error before it
  client.connect({ sock: socket, username: 'alice', password: 'wonderland' });
  await ready;
  client.end();
}

/** A v2 header: PROXY (or LOCAL) over TCP, from `ip`:`port` to 127.0.0.1:2022, with `extra` bytes of TLVs. */
function v2(ip: string, port: number, { command = 1, extra = 0, version = 2 } = {}): Buffer {
  const six = ip.includes(':');
  const addresses = Buffer.alloc(six ? 36 : 12);
  if (six) {
    const groups = ip.replace('::', `:${'0:'.repeat(8 - ip.split(':').filter(Boolean).length)}`).split(':').filter(Boolean);
    groups.forEach((group, i) => addresses.writeUInt16BE(parseInt(group, 16), 2 * i));
    addresses.writeUInt16BE(1, 30); // destination ::1
    addresses.writeUInt16BE(port, 32);
    addresses.writeUInt16BE(2022, 34);
  } else {
    ip.split('.').forEach((byte, i) => (addresses[i] = Number(byte)));
    [127, 0, 0, 1].forEach((byte, i) => (addresses[4 + i] = byte));
    addresses.writeUInt16BE(port, 8);
    addresses.writeUInt16BE(2022, 10);
  }
  const head = Buffer.from('0d0a0d0a000d0a515549540a00000000', 'hex');
  head[12] = (version << 4) | command;
  head[13] = six ? 0x21 : 0x11;
  head.writeUInt16BE(addresses.length + extra, 14);
  return Buffer.concat([head, addresses, Buffer.alloc(extra)]);
}

describe('PROXY headers', () => {
  test('v1 and v2, over IPv4 and IPv6, with what follows left unread', () => {
    const ssh = Buffer.from('SSH-2.0-OpenSSH_10.2\r\n');
    const cases: [Buffer, unknown][] = [
      [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 51000 2022\r\n'), { origin: { ip: '192.0.2.7', port: 51000 }, length: 43 }],
      [Buffer.from('PROXY TCP6 2001:db8::7 ::1 51000 2022\r\n'), { origin: { ip: '2001:db8::7', port: 51000 }, length: 39 }],
      [Buffer.from('PROXY UNKNOWN\r\n'), { local: true, length: 15 }],
      [v2('192.0.2.7', 51000), { origin: { ip: '192.0.2.7', port: 51000 }, length: 28 }],
      [v2('2001:db8::7', 51000), { origin: { ip: '2001:db8::7', port: 51000 }, length: 52 }],
      [v2('192.0.2.7', 51000, { extra: 40 }), { origin: { ip: '192.0.2.7', port: 51000 }, length: 68 }],
      [v2('192.0.2.7', 51000, { command: 0 }), { local: true, length: 28 }],
    ];
    for (const [header, expected] of cases) {
      assert.deepEqual(parseHeader(Buffer.concat([header, ssh])), expected, header.toString('latin1'));
      // Cut anywhere, it is not a header yet: more must be read.
      for (let length = 1; length < header.length; length++) assert.equal(parseHeader(header.subarray(0, length)), undefined);
    }
  });

  test('what is not a whole, sound header is refused, with what is wrong', () => {
    const cases: [Buffer, string][] = [
      [Buffer.from('SSH-2.0-OpenSSH_10.2\r\n'), 'not a PROXY header'],
      [Buffer.from('GET / HTTP/1.1\r\n'), 'not a PROXY header'],
      [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 51000 junk\r\n'), 'a malformed PROXY v1 header'],
      [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 65536 2022\r\n'), 'a malformed PROXY v1 header'],
      [Buffer.from('PROXY TCP4 2001:db8::7 127.0.0.1 1 2022\r\n'), 'a malformed PROXY v1 header'],
      [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 051000 2022\r\n'), 'a malformed PROXY v1 header'],
      [Buffer.from(`PROXY TCP4 ${'9'.repeat(120)}`), 'a PROXY v1 header longer than 107 bytes'],
      [v2('192.0.2.7', 1, { extra: 16 * 1024 }), `a PROXY v2 header of ${16 + 12 + 16 * 1024} bytes (at most ${MAX_HEADER} are taken)`],
      [v2('192.0.2.7', 1, { version: 1 }), 'a PROXY v2 header of version 1'],
      [v2('192.0.2.7', 1, { command: 5 }), 'a PROXY v2 header with command 5'],
    ];
    for (const [bytes, message] of cases) {
      const header = parseHeader(bytes);
      assert.ok(header && 'error' in header, bytes.toString('latin1'));
      assert.ok(header.error.startsWith(message), `${header.error} / ${message}`);
    }
  });
});

describe('a step behind a balancer (PROXY_PROTOCOL_FROM=127.0.0.1)', { timeout: 60_000 }, () => {
  const step = useStep('03-trivial-channel.ts', { env: { PROXY_PROTOCOL_FROM: '127.0.0.1' } });

  /** Connects from `local` (a 127.0.0.0/8 address), writes `header`, and resolves with the socket. */
  async function send(header: Buffer, local = '127.0.0.1'): Promise<Socket> {
    const socket = connect({ host: '127.0.0.1', port: step().port, localAddress: local });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(header);
    return socket;
  }

  test('a client named by a v1 or a v2 header logs in, and the log knows it by that address', async () => {
    for (const [header, who] of [[v2('192.0.2.7', 40001), '192.0.2.7:40001'],
      [Buffer.from('PROXY TCP6 2001:db8::7 ::1 40002 2022\r\n'), '[2001:db8::7]:40002']] as const) {
      await loginOver(await send(header));
      await waitFor(who, () => count(step(), new RegExp(`^${who.replace(/[.[\]]/g, '\\$&')} authenticated as alice$`, 'gm')) || undefined);
    }
  });

  test('a bad, truncated or oversized header is refused with one line, and the step goes on serving', async () => {
    const bad: [Buffer, string][] = [
      [Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 51000 junk\r\nSSH-2.0-x\r\n'), 'a malformed PROXY v1 header'],
      [Buffer.from('SSH-2.0-OpenSSH_10.2\r\n'), 'not a PROXY header'],
      [v2('192.0.2.7', 1, { extra: 16 * 1024 }), 'a PROXY v2 header of 16412 bytes'],
    ];
    for (const [bytes, why] of bad) {
      const socket = await send(bytes);
      await once(socket, 'close');
      await waitFor(why, () => count(step(), new RegExp(`^127\\.0\\.0\\.1:\\d+ ${why}.* from a PROXY_PROTOCOL_FROM address: closing$`, 'gm')) || undefined);
    }
    // Truncated: half a header, then the balancer closes.
    const half = await send(v2('192.0.2.7', 1).subarray(0, 20));
    half.end();
    await once(half, 'close');
    await waitFor('the end', () => count(step(), /the connection ended inside its PROXY header from a PROXY_PROTOCOL_FROM address: closing$/gm) || undefined);
    // A health check, that connects and closes or sends a LOCAL header (HAProxy's, with send-proxy-v2), is closed
    // and says nothing: it is no client's, and the balancer's address must never serve a penalty for it.
    const before = step().output();
    const check = await send(Buffer.alloc(0));
    check.end();
    await once(check, 'close');
    for (const local of [v2('192.0.2.7', 1, { command: 0 }), Buffer.from('PROXY UNKNOWN\r\n')]) {
      const checked = await send(local);
      checked.resume();
      await once(checked, 'close');
    }
    // And the step still serves: the next lines it logs are that login's (the checks, closed before, said nothing).
    await loginOver(await send(v2('192.0.2.8', 40003)));
    await waitFor('the login', () => /^192\.0\.2\.8:40003 authenticated as alice$/m.test(step().output()) || undefined);
    await logged(step(), /^192\.0\.2\.8:40003 connection opened\n/, before.length);
  });

  test('a header from an address not listed is not taken: the connection is closed, with one line', async () => {
    for (const header of [v2('192.0.2.9', 1), Buffer.from('PROXY TCP4 192.0.2.9 127.0.0.1 1 2022\r\n')]) {
      const socket = await send(header, '127.0.0.2');
      socket.resume(); // ssh2 sends its version first: read it, and the end after it
      await once(socket, 'close');
    }
    await waitFor('the lines', () => (count(step(), /^127\.0\.0\.2:\d+ a PROXY header from an address not in PROXY_PROTOCOL_FROM: closing$/gm) === 2) || undefined);
    assert.equal(count(step(), /192\.0\.2\.9|error/g), 0);
  });
});

describe('PROXY_PROTOCOL_FROM=::/0: IPv6 balancers only, so an IPv4 client needs no header', { timeout: 60_000 }, () => {
  const step = useStep('03-trivial-channel.ts', { env: { PROXY_PROTOCOL_FROM: '::/0' } });

  test('a plain login from 127.0.0.1 is served as it is, not asked for a header', async () => {
    // Before, Node's BlockList put 127.0.0.1 in ::/0, and the connection was closed for lack of a header.
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve()).on('error', reject); // later errors too: a reset after the end
      client.connect({ host: '127.0.0.1', port: step().port, username: 'bob', password: 'builder' });
    });
    client.end();
    assert.equal(count(step(), /PROXY/g), 0);
  });
});
