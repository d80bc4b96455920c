// Nothing a client sends may crash a step: after garbage and abrupt resets, the same process still serves logins.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { ssh, useStep, waitFor } from './helpers.ts';

/** Connects, lets `act` write to the socket, and resolves once the socket has closed (ours or theirs). */
function rawConnection(port: number, act: (socket: Socket, received: () => Buffer) => void): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.once('close', () => resolve(Buffer.concat(chunks)));
    socket.once('connect', () => act(socket, () => Buffer.concat(chunks)));
    // Whatever happens, this connection ends within five seconds.
    setTimeout(() => socket.destroy(), 5_000).unref();
  });
}

const sshIdent = 'SSH-2.0-conch-steps-test\r\n';

describe('robustness', { timeout: 90_000 }, () => {
  const step = useStep('03-trivial-channel.ts');
  // After each abuse, the process is still up and a new connection still gets the server's version line.
  afterEach(async () => {
    const reply = await rawConnection(step().port, (socket, received) => {
      const poll = setInterval(() => received().includes('\n') && (clearInterval(poll), socket.end()), 20);
    });
    assert.match(reply.toString('latin1'), /^SSH-2\.0-/);
  });

  test('random bytes instead of an SSH version line', async () => {
    await rawConnection(step().port, (socket) => socket.end(randomBytes(65_536)));
  });

  test('an HTTP request', async () => {
    const reply = await rawConnection(step().port, (socket) => {
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      setTimeout(() => socket.end(), 300);
    });
    assert.match(reply.toString('latin1'), /^SSH-2\.0-/, 'the server still says who it is');
  });

  test('a version line followed by a packet of garbage', async () => {
    await rawConnection(step().port, (socket) => {
      socket.write(sshIdent);
      socket.write(Buffer.concat([Buffer.from([0, 0, 0, 12, 4]), randomBytes(4096)]));
    });
    await waitFor('the error to be logged', () => (/ error: /.test(step().output()) || undefined));
  });

  test('a packet that claims to be enormous', async () => {
    await rawConnection(step().port, (socket) => {
      socket.write(sshIdent);
      socket.write(Buffer.from([0xff, 0xff, 0xff, 0xf0, 4, 20]));
    });
  });

  test('a reset in the middle of the key exchange', async () => {
    await rawConnection(step().port, (socket, received) => {
      socket.write(sshIdent);
      // Wait for the server's KEXINIT, send half of a packet, then reset the connection (RST, not FIN).
      const poll = setInterval(() => {
        if (received().length < 200) return;
        clearInterval(poll);
        socket.write(Buffer.from([0, 0, 1, 0, 10, 20]));
        socket.resetAndDestroy();
      }, 20);
    });
  });

  test('a reset as soon as the connection opens', async () => {
    await rawConnection(step().port, (socket) => socket.resetAndDestroy());
  });

  test('after all that, the same process still serves a normal login', async () => {
    const result = await ssh(step().port, 'alice', 'wonderland');
    assert.equal(result.stdout, 'This session is very simple. Goodbye!\r\n');
    const text = step().output();
    const opened = text.match(/ connection opened$/gm)?.length ?? 0;
    await waitFor('every connection to close', () =>
      (step().output().match(/ connection closed$/gm)?.length ?? 0) === opened || undefined);
    assert.ok(opened >= 7, `${opened} connections logged`);
  });
});
