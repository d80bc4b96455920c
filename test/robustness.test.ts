// Nothing a client sends may crash a step: after garbage and abrupt resets, the same process still serves logins.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { kexinitPacket, seededRandom, ssh, useStep, waitFor } from './helpers.ts';

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

// These tests are about what a connection sends, not about how many there are: the startup limits stay out of it.
const noStartupLimits = { env: { MAX_STARTUPS: '1000', PER_SOURCE_MAX_STARTUPS: '1000' } };

describe('robustness', { timeout: 90_000 }, () => {
  const step = useStep('03-trivial-channel.ts', noStartupLimits);
  // After each abuse, the process is still up and a new connection still gets the server's version line.
  afterEach(async () => {
    const reply = await rawConnection(step().port, (socket, received) => {
      const poll = setInterval(() => (received().includes('\n') || socket.destroyed) && (clearInterval(poll), socket.end()), 20);
    });
    assert.match(reply.toString('latin1'), /^SSH-2\.0-/);
  });

  test('random bytes instead of an SSH version line', async () => {
    await rawConnection(step().port, (socket) => socket.end(randomBytes(65_536)));
  });

  test('an HTTP request', async () => {
    const reply = await rawConnection(step().port, (socket, received) => {
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      const poll = setInterval(() => (received().includes('\n') || socket.destroyed) && (clearInterval(poll), socket.end()), 20);
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
        if (received().length < 200 && !socket.destroyed) return;
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

describe('robustness under load', { timeout: 180_000 }, () => {
  const step = useStep('03-trivial-channel.ts', noStartupLimits);
  const random = seededRandom(Number(process.env.FUZZ_SEED ?? 20111)); // rerun a failure with its FUZZ_SEED

  test('hundreds of resets at random points and of mutated handshake packets: the process stays up, its '
    + 'memory levels off, and a normal login works afterwards', async () => {
    const rss: number[] = [];
    for (let round = 0; round < 3; round++) {
      await inParallel(150, 8, (i) => (i % 2 === 0 ? resetSomewhere(step().port, random) : mutatedHandshake(step().port, random)));
      rss.push(residentBytes(step().pid));
    }
    const growth = rss[2]! - rss[1]!;
    assert.ok(growth < 32 * 1024 * 1024, `the last round grew the server by ${growth} bytes (${rss.join(', ')})`);
    const result = await ssh(step().port, 'alice', 'wonderland', ['-T']);
    assert.equal(result.stdout, 'This session is very simple. Goodbye!\r\n');
  });
});

async function inParallel(total: number, width: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < total) await task(next++);
  }));
}

function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

/** Connects, goes some way into the handshake (nothing, the version line, the server's KEXINIT), then resets. */
function resetSomewhere(port: number, random: () => number): Promise<Buffer> {
  const stage = Math.floor(random() * 3);
  const wait = Math.floor(random() * 30);
  return rawConnection(port, (socket, received) => {
    if (stage >= 1) socket.write(sshIdent);
    if (stage >= 2) socket.write(kexinitPacket(random));
    const poll = setInterval(() => {
      if (stage === 2 && received().length < 100 && !socket.destroyed) return;
      clearInterval(poll);
      // The attack: a reset at a random moment, up to 30 ms into the stage reached.
      setTimeout(() => socket.resetAndDestroy(), wait);
    }, 5);
  });
}

/** Sends the version line and a client KEXINIT packet, damaged in one of several ways, then closes. */
function mutatedHandshake(port: number, random: () => number): Promise<Buffer> {
  const packet = kexinitPacket(random);
  const kind = Math.floor(random() * 5);
  let bytes: Buffer;
  if (kind === 0) {
    bytes = Buffer.from(packet); // bit flips
    for (let flips = 1 + Math.floor(random() * 5); flips > 0; flips--) {
      bytes[Math.floor(random() * bytes.length)]! ^= 1 << Math.floor(random() * 8);
    }
  } else if (kind === 1) {
    bytes = Buffer.from(packet); // a wrong length
    bytes.writeUInt32BE(Math.floor(random() * 0xffffffff), 0);
  } else if (kind === 2) {
    bytes = packet.subarray(0, Math.floor(random() * packet.length)); // truncated
  } else if (kind === 3) {
    bytes = randomBytes(1 + Math.floor(random() * 2048)); // random bytes where the packet should be
  } else {
    bytes = Buffer.concat([packet, randomBytes(1 + Math.floor(random() * 512))]); // a good packet, then garbage
  }
  return rawConnection(port, (socket) => {
    socket.write(sshIdent);
    socket.write(bytes);
    // The attack: the end comes 20 ms after the damaged packet, while the step may still be reading it.
    setTimeout(() => socket.end(), 20);
  });
}
