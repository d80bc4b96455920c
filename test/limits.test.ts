// The limits of shared/server/admission.ts, limits.ts and penalties.ts, which every step lives under.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { count, guarded, kexinitPacket, lines, quiet, ssh, ssh2Login, sshEnv, sshOptions, startStep, temporaryDir, waitFor, type Step } from './helpers.ts';

const TRY_AGAIN = 'Permission denied, please try again.';

/** Wrong passwords, with ssh willing to ask `prompts` times; resolves with how often it asked, and the result. */
async function guessWrong(step: Step, prompts = 10) {
  const askpassLog = join(temporaryDir(), 'asked');
  const result = await ssh(step.port, 'alice', 'wrong', ['-T', '-o', `NumberOfPasswordPrompts=${prompts}`], '',
    { ASKPASS_LOG: askpassLog });
  const asked = readFileSync(askpassLog, 'utf8').trim().split('\n').map(Number);
  return { result, asked };
}

/** An open TCP connection that sends nothing; `closed` resolves when the server closes it. */
function idleConnection(port: number) {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString('latin1')));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const opened = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, closed, opened, received: () => received };
}

function stillOpen(socket: Socket): boolean {
  return !socket.destroyed && socket.readyState === 'open';
}

describe('MAX_AUTH_TRIES', { timeout: 60_000 }, () => {
  // Step 01 offers no methods, so ssh tries keyboard-interactive too: one of the six failures needs no password.
  for (const [file, passwords] of [['01-no-login.ts', 5], ['03-trivial-channel.ts', 6]] as const) {
    test(`by default ${file} closes a connection after exactly 6 failed logins`, async () => {
      const step = await startStep(file);
      try {
        const { result, asked } = await guessWrong(step);
        assert.equal(asked.length, passwords, `ssh asked for ${passwords} passwords`);
        assert.deepEqual(lines(result.stderr), [
          ...Array(passwords - 1).fill(TRY_AGAIN),
          `Received disconnect from 127.0.0.1 port ${step.port}:11: `,
          `Disconnected from 127.0.0.1 port ${step.port}`,
        ]);
        assert.equal(result.status, 255);
        assert.equal(count(step, / 6 failed logins \(MAX_AUTH_TRIES\): closing$/gm), 1);
      } finally {
        await step.stop();
      }
    });
  }

  test('MAX_AUTH_TRIES=2 closes after 2, and the none probe does not count', async () => {
    const step = await startStep('02-password-auth.ts', { env: { MAX_AUTH_TRIES: '2' } });
    try {
      const { asked, result } = await guessWrong(step);
      assert.equal(asked.length, 2);
      assert.equal(result.status, 255);
    } finally {
      await step.stop();
    }
  });
});

describe('LOGIN_GRACE_TIME', { timeout: 60_000 }, () => {
  test('a connection that has not logged in is closed when the time is up, whatever it is doing', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { LOGIN_GRACE_TIME: '1' } });
    try {
      const silent = idleConnection(step.port);
      const halfBanner = idleConnection(step.port);
      // This one starts the key exchange (a version line and a KEXINIT), then never sends its key.
      const slowKeyExchange = idleConnection(step.port);
      await Promise.all([halfBanner.opened, slowKeyExchange.opened]);
      halfBanner.socket.write('SSH-2.0-slow');
      slowKeyExchange.socket.write(Buffer.concat([Buffer.from('SSH-2.0-slow\r\n'), kexinitPacket()]));
      const started = Date.now();
      await Promise.all([silent.closed, halfBanner.closed, slowKeyExchange.closed]);
      assert.match(slowKeyExchange.received(), /^SSH-2\.0-/, 'the key exchange had begun');
      assert.ok(Date.now() - started >= 900, 'not before the grace time');
      assert.equal(count(step, / not logged in after 1 s \(LOGIN_GRACE_TIME\): closing$/gm), 3);
      // A login that takes less than the grace time is not affected.
      assert.equal((await ssh(step.port, 'alice', 'wonderland', ['-T'])).stdout,
        'This session is very simple. Goodbye!\r\n');
    } finally {
      await step.stop();
    }
  });
});

describe('a connection the server has ended', { timeout: 60_000 }, () => {
  test('a client that never closes its own side is let go two seconds after the server ended its side', async () => {
    const step = await startStep('03-trivial-channel.ts');
    try {
      // It keeps its side open (allowHalfOpen) after the server refuses its SSH 1 version line and ends its side.
      const socket = connect({ port: step.port, host: '127.0.0.1', allowHalfOpen: true });
      socket.on('error', () => {});
      socket.resume();
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      const closedLine = new RegExp(`^127\\.0\\.0\\.1:${socket.localPort} connection closed$`, 'm');
      socket.write('SSH-1.5-old\r\n');
      await new Promise<void>((resolve) => socket.once('end', () => resolve()));
      const ended = Date.now();
      await waitFor('the step to let it go', () => closedLine.test(step.output()) || undefined, 6000);
      const after = Date.now() - ended;
      assert.ok(after >= 1500 && after < 5000, `let go ${after} ms after the server's end`);
      assert.ok(!socket.destroyed, 'the client had not closed');
      socket.destroy();
    } finally {
      await step.stop();
    }
  });
});

describe('MAX_STARTUPS', { timeout: 60_000 }, () => {
  test('one connection more than may be logging in is closed at once; logged-in ones do not count', async () => {
    const step = await startStep('06-detecting-eof.ts', { env: { MAX_STARTUPS: '3' } });
    const clients: ssh2.Client[] = [];
    try {
      // Two logged-in sessions take no place in the queue.
      for (const [user, password] of [['alice', 'wonderland'], ['bob', 'builder']]) {
        clients.push(await ssh2Login(step.port, user, password));
      }
      const crowd = [idleConnection(step.port), idleConnection(step.port), idleConnection(step.port)];
      await waitFor('three idle connections to get the server\'s version line', () =>
        crowd.every((c) => c.received().startsWith('SSH-2.0-')) || undefined);
      const extra = idleConnection(step.port);
      await extra.closed;
      assert.equal(extra.received(), '', 'closed before the server said anything');
      assert.ok(crowd.every((c) => stillOpen(c.socket)));
      assert.equal(count(step, / refused: 3 connections are already logging in \(MAX_STARTUPS\)$/gm), 1);

      for (const c of crowd) c.socket.destroy();
      await Promise.all(crowd.map((c) => c.closed));
      await waitFor('the server to see them go', () => count(step, / connection closed$/gm) >= 3 || undefined);
      const result = await ssh(step.port, 'alice', 'wonderland', ['-T'], 'hi');
      assert.match(result.stdout, /^No terminal was requested/);
    } finally {
      for (const client of clients) client.end();
      await step.stop();
    }
  });
});

describe('per-source penalty', { timeout: 120_000 }, () => {
  test('a reader who runs step 01 five times in a row, answering every prompt wrong, never waits', async () => {
    // The default AUTH_PENALTY_MAX (8 s): the tests' own setting of 0 is taken out.
    const step = await startStep('01-no-login.ts', { env: { AUTH_PENALTY_MAX: '' } });
    try {
      for (let run = 1; run <= 5; run++) {
        const { result, asked } = await guessWrong(step, 3);
        assert.deepEqual([result.status, asked.length], [255, 3]);
      }
      // The step logs the moment an address starts to wait (the test below sees it): here it never does.
      await quiet(step);
      assert.equal(count(step, /keeps failing/g), 0);
    } finally {
      await step.stop();
    }
  });

  test('a program guessing 30 times, a connection each, soon waits longer and longer, up to the cap, logged once', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { AUTH_PENALTY_MAX: '1' } });
    try {
      const waits: number[] = [];
      for (let i = 0; i < 30; i++) {
        const client = new ssh2.Client();
        const started = performance.now();
        await new Promise((resolve) => {
          client.on('error', resolve);
          client.connect({ host: '127.0.0.1', port: step.port, username: 'alice', password: `guess ${i}` });
        });
        waits.push((performance.now() - started) / 1000);
        client.end();
        await waitFor('the server to see it go', () => count(step, / connection closed$/gm) === i + 1 || undefined);
      }
      // Ten failed connections are free, so the 11th is still answered at once: the waiting starts with the 12th
      // (the log says so as it starts), half a second, and from the 13th on the cap, 1 s. Only lower bounds on the
      // waits: machines are noisy.
      const logged = step.output().split('\n');
      const starts = logged.findIndex((line) => / this address keeps failing to log in: answers to it now wait, up to 1 s$/.test(line));
      assert.equal(logged.slice(0, starts).filter((line) => line.endsWith(' connection opened')).length, 12);
      assert.ok(waits[12]! >= 0.95 && waits[29]! >= 0.95, `waits: ${waits.map((w) => w.toFixed(2)).join(', ')}`);
      assert.equal(count(step, / this address keeps failing to log in/gm), 1);
    } finally {
      await step.stop();
    }
  });
});

describe('keepalive', { timeout: 60_000 }, () => {
  test('a logged-in client that stops answering is disconnected', async () => {
    const step = await startStep('05-accepting-input.ts', { env: { KEEPALIVE_INTERVAL: '1', KEEPALIVE_COUNT_MAX: '1' } });
    const client = guarded(spawn('ssh', [...sshOptions, '-T', '-p', String(step.port), 'alice@localhost'], {
      env: { ...process.env, ...sshEnv('wonderland') },
    }));
    try {
      let stdout = '';
      client.stdout.on('data', (chunk) => (stdout += chunk));
      client.stdin.write('x');
      await waitFor('the echo', () => stdout.includes(`echo: 'x'`) || undefined);
      // Freeze the client: its socket stays open, but nothing answers the server's pings any more.
      client.kill('SIGSTOP');
      await waitFor('the server to give up', () => count(step, / error: Keepalive timeout$/gm) === 1 || undefined);
      await waitFor('the connection to close', () => count(step, / connection closed$/gm) === 1 || undefined);
    } finally {
      client.kill('SIGKILL');
      await step.stop();
    }
  });
});
