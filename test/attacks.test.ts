// A hostile client after login, and a crowd before it: nothing a client does may end a step's process or grow it
// without bound. Each attack is bounded in count and time, and every test ends with the step still serving.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { sign } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { hashPassword } from '../shared/login/passwords.ts';
import { exec, flood, peakDuring, sendWithoutReading, ptyStorm, raw, remoteId, residentMiB, shell, slotHolder, socketOf } from './hostile.ts';
import { count, logged, plainPacket, runStep, seededRandom, ssh, ssh2Login, sshEnv, sshOptions, startStep, type Step, temporaryDir, useStep, waitFor } from './helpers.ts';

/** The step is alive, logs nothing caught by the last net, and a real OpenSSH login still works. */
async function stillServes(step: Step): Promise<void> {
  const result = await ssh(step.port, 'alice', 'wonderland', ['-T', 'whoami'], '');
  assert.doesNotMatch(step.output(), /^internal error/m);
  // Steps before 08 have no exec, and refuse it: that answer, too, comes only after a login.
  assert.ok(result.status === 0 || /^exec request failed on channel 0\r?\n$/.test(result.stderr), `login failed: ${result.stderr}`);
  process.kill(step.pid, 0);
}

describe('crashes after login', { timeout: 120_000 }, () => {
  test('ssh -C running cat on step 08, killed mid-stream, leaves the step serving', async () => {
    const step = await startStep('08-exec-requests.ts');
    try {
      for (let round = 0; round < 3; round++) {
        const client = spawn('ssh', [...sshOptions, '-C', '-p', String(step.port), 'alice@localhost', 'cat'], {
          env: { ...process.env, ...sshEnv('wonderland') }, stdio: ['pipe', 'ignore', 'ignore'],
        });
        client.stdin.on('error', () => {});
        const data = Buffer.alloc(64 * 1024, 'y');
        let fed = 0;
        const feed = setInterval(() => client.stdin.write(data, () => (fed += 1)), 5);
        await waitFor('the login', () => count(step, / authenticated as alice$/gm) > round || undefined);
        // Killed mid-stream: once ssh has taken 2 MiB more after the login, most of it compressed on its way.
        const then = fed;
        await waitFor('2 MiB more through ssh', () => fed >= then + 32 || undefined);
        clearInterval(feed);
        client.kill('SIGKILL');
        await waitFor('the connection to close', () => count(step, / connection closed$/gm) > round || undefined);
      }
      await stillServes(step);
    } finally {
      await step.stop();
    }
  });

  for (const file of ['08-exec-requests.ts', '09-public-key-auth.ts', '10-window-change.ts']) {
    test(`${file}: names every object has are not commands`, async () => {
      const step = await startStep(file);
      try {
        for (const name of ['constructor', 'toString', '__proto__', 'valueOf', 'hasOwnProperty']) {
          const result = await ssh(step.port, 'alice', 'wonderland', [name]);
          assert.deepEqual([result.stderr, result.status], [`${name}: command not found\n`, 127]);
        }
        await stillServes(step);
      } finally {
        await step.stop();
      }
    });
  }

  test('a second exec, and an exec after a shell, on one session: refused, and the step goes on', async () => {
    const step = await startStep('08-exec-requests.ts');
    try {
      const client = await ssh2Login(step.port);
      const channel = await exec(client, 'cat');
      raw(client).exec(remoteId(channel), 'echo second', true);
      raw(client).shell(remoteId(channel), true);
      raw(client).exec(remoteId(await shell(client)), 'echo after the shell', true);
      // The first command still runs: what goes in comes back.
      let echoed = '';
      channel.on('data', (chunk: Buffer) => (echoed += chunk));
      channel.end('still here');
      await waitFor('the echo', () => echoed === 'still here' || undefined);
      client.end();
      await stillServes(step);
    } finally {
      await step.stop();
    }
  });
});

describe('a post-login protocol fuzzer', { timeout: 240_000 }, () => {
  const seed = Number(process.env.FUZZ_SEED ?? 4254); // rerun a failure with its FUZZ_SEED
  for (const file of ['05-accepting-input.ts', '08-exec-requests.ts', '10-window-change.ts']) {
    test(`${file}: random and mutated channel requests, window adjusts, data after close, repeats`, async () => {
      const step = await startStep(file);
      const random = seededRandom(seed);
      const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
      const size = () => pick([0, 1, 80, 24, 1000, 65535, 0x7fffffff, 0xffffffff]);
      const text = () => pick(['', 'xterm', 'a'.repeat(1000), '\x1b]0;owned\x07', '\u202e', '\n127.0.0.1:1 forged']);
      try {
        for (let connection = 0; connection < 4; connection++) {
          const client = await ssh2Login(step.port, 'alice', 'wonderland');
          client.on('error', () => {});
          const proto = raw(client);
          let opened = 0;
          for (let op = 0; op < 400 && !socketOf(client).destroyed; op++) {
            // The server numbers channels from 0 in the order they are opened; sometimes aim past them.
            const chan = random() < 0.9 ? Math.floor(random() * (opened + 1)) : pick([opened + 5, 2 ** 31, 2 ** 32 - 2]);
            try {
            switch (Math.floor(random() * 13)) {
              case 0: case 1: proto.session(100 + opened++, pick([0, 1, 2 ** 21, 2 ** 32 - 1]), pick([1, 32768, 2 ** 31])); break;
              case 2: proto.pty(chan, size(), size(), size(), size(), text(), null, random() < 0.5); break;
              case 3: proto.shell(chan, random() < 0.5); break;
              case 4: proto.exec(chan, pick(['cat', 'echo hi', 'constructor', 'exit 3', '"unterminated', text()]), random() < 0.5); break;
              case 5: proto.windowChange(chan, size(), size(), size(), size()); break;
              case 6: proto.env(chan, text(), text(), random() < 0.5); break;
              case 7: proto.signal(chan, pick(['INT', 'KILL', text()])); break;
              case 8: case 9: proto.channelData(chan, Buffer.alloc(pick([1, 100, 32767, 32768]), random() * 256)); break;
              case 10: proto.channelEOF(chan); break;
              case 11: proto.channelClose(chan); break;
              default: proto.channelWindowAdjust(chan, pick([1, 2 ** 20, 2 ** 31, 2 ** 32 - 1])); break;
            }
            } catch {
              // ssh2's client refused to send it (an invalid signal name): nothing reached the server.
            }
            if (op % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
          }
          // Nothing the fuzz sends has an answer to wait for: the step gets 200 ms to act on it before the client goes.
          await new Promise((resolve) => setTimeout(resolve, 200));
          client.end();
        }
        await stillServes(step);
        assert.ok(residentMiB(step.pid) < 400, `${residentMiB(step.pid)} MiB after the fuzzing`);
      } finally {
        await step.stop();
      }
    });
  }
});

describe('memory, whatever a client sends or withholds', { timeout: 240_000 }, () => {
  const GiB = 1024 ** 3;

  for (const [file, command] of [['05-accepting-input.ts', undefined], ['08-exec-requests.ts', 'cat']] as const) {
    test(`${file}: a client that would send 1 GiB and never reads is held to a few MiB`, async () => {
      const step = await startStep(file);
      try {
        const before = residentMiB(step.pid);
        const client = await ssh2Login(step.port, 'alice', 'wonderland');
        client.on('error', () => {});
        const channel = command ? await exec(client, command) : await shell(client);
        // This client never reads, so ssh2 stops opening the server's window once 2 MiB wait unread. The step
        // must then stop reading too, or the client's 1 GiB all goes in and its answers pile up in the step.
        let taken = 0;
        const peak = await peakDuring(step.pid, async () => (taken = await sendWithoutReading(channel, GiB)));
        console.log(`${file}: took ${(taken / 2 ** 20).toFixed(0)} MiB of 1024; ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} at most`);
        assert.ok(taken < 64 * 2 ** 20, `the step took ${taken} bytes`);
        assert.ok(peak - before < 100, `grew by ${(peak - before).toFixed(0)} MiB`);
        client.end();
        await stillServes(step);
      } finally {
        await step.stop();
      }
    });

    test(`${file}: a client that sends 1 GiB past the window is cut off`, async () => {
      const step = await startStep(file);
      try {
        const before = residentMiB(step.pid);
        const client = await ssh2Login(step.port, 'alice', 'wonderland');
        client.on('error', () => {});
        const channel = command ? await exec(client, command) : await shell(client);
        const peak = await peakDuring(step.pid, () => flood(client, channel, GiB));
        await waitFor('the cut', () => count(step, / error: Peer ignored channel window$/gm) === 1 || undefined);
        assert.ok(peak - before < 100, `grew by ${(peak - before).toFixed(0)} MiB`);
        await stillServes(step);
      } finally {
        await step.stop();
      }
    });
  }

  test('10-window-change.ts: an enormous pty and a storm of window-changes, never read', async () => {
    const step = await startStep('10-window-change.ts');
    try {
      const before = residentMiB(step.pid);
      const client = await ssh2Login(step.port, 'alice', 'wonderland');
      client.on('error', () => {});
      const peak = await peakDuring(step.pid, async () => {
        await ptyStorm(client, 300);
        // The peak is measured over a window: half a second more, while the step handles what the storm queued.
        await new Promise((resolve) => setTimeout(resolve, 500));
      });
      assert.ok(peak - before < 100, `grew by ${(peak - before).toFixed(0)} MiB`);
      client.end();
      await stillServes(step);
    } finally {
      await step.stop();
    }
  });

  test('sessions: at most MAX_SESSIONS open on one connection, refusals logged once and counted', async () => {
    const step = await startStep('05-accepting-input.ts');
    try {
      const client = await ssh2Login(step.port, 'alice', 'wonderland');
      for (let i = 0; i < 30; i++) raw(client).session(100 + i, 2 ** 21, 32768);
      await waitFor('the refusals', () => count(step, /refused a session/g) > 0 || undefined);
      // Closing the ten open ones makes room again: a shell opens. A channel is closed once both sides have said so:
      // the shell is asked for once the server's ten CLOSE messages are back (ssh2's client drops them, for it
      // does not know these channels: they are counted on their way in).
      const handlers = (raw(client) as unknown as { _handlers: Record<string, (...args: unknown[]) => void> })._handlers;
      const closeHandler = handlers.CHANNEL_CLOSE!;
      let closedByServer = 0;
      handlers.CHANNEL_CLOSE = (...args: unknown[]) => {
        if ((args[1] as number) >= 100) closedByServer += 1;
        closeHandler(...args);
      };
      for (let i = 0; i < 10; i++) raw(client).channelClose(i);
      await waitFor('the server\'s ten CLOSE messages', () => closedByServer === 10 || undefined);
      (await shell(client)).close();
      client.end();
      await waitFor('the close', () => count(step, / connection closed$/gm) === 1 || undefined);
      assert.equal(count(step, / refused a session: 10 are open on this connection \(MAX_SESSIONS\)$/gm), 1);
      assert.equal(count(step, / \(previous message repeated 19 more times\)$/gm), 1);
    } finally {
      await step.stop();
    }
  });

  test('logged-in connections: MAX_CONNECTIONS, and a process near its limit of open files', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { MAX_CONNECTIONS: '3' } });
    const clients: ssh2.Client[] = [];
    try {
      for (let i = 0; i < 3; i++) clients.push(await ssh2Login(step.port));
      const refused = new ssh2.Client();
      await new Promise((resolve) => refused.on('error', resolve).connect({ host: '127.0.0.1', port: step.port, username: 'bob', password: 'builder' }));
      // The step's log line reaches this process after the client has seen the connection end: waited for, then counted.
      await waitFor('the refusal in the log', () => count(step, / refused: 3 connections are logged in/gm) > 0 || undefined);
      assert.equal(count(step, / refused: 3 connections are logged in \(MAX_CONNECTIONS\)$/gm), 1);
      clients.pop()!.end();
      await waitFor('a place to free up', () => count(step, / connection closed$/gm) === 1 || undefined);
      clients.push(await ssh2Login(step.port));
    } finally {
      for (const client of clients) client.end();
      await step.stop();
    }

    const limited = await startStep('03-trivial-channel.ts', { openFiles: 128, env: { MAX_STARTUPS: '500', PER_SOURCE_MAX_STARTUPS: '500' } });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const socket = connect(limited.port, '127.0.0.1');
        socket.on('error', () => {});
        sockets.push(socket);
      }
      await waitFor('the refusal', () => count(limited, /this process may open only 128 files/g) > 0 || undefined);
      for (const socket of sockets) socket.destroy();
      await waitFor('them all to close', () =>
        count(limited, / connection closed$/gm) === count(limited, / connection opened$/gm) || undefined);
      await stillServes(limited);
    } finally {
      await limited.stop();
    }
  });
});

describe('count-limits count what they grant, as they grant it', { timeout: 60_000 }, () => {
  test('MAX_CONNECTIONS=2: six logins that finish together, two get in', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { MAX_CONNECTIONS: '2', PER_SOURCE_MAX_STARTUPS: '10' } });
    // Each client connects and waits at its first login attempt until all six are there; then all send at once.
    let arrived = 0;
    let go = () => {};
    const together = new Promise<void>((resolve) => (go = resolve));
    const clients = Array.from({ length: 6 }, () => new ssh2.Client());
    try {
      const outcomes = await Promise.all(clients.map((client) => new Promise<string>((resolve) => {
        client.once('ready', () => resolve('logged in')).once('error', () => resolve('refused')).once('close', () => resolve('refused'));
        client.connect({
          host: '127.0.0.1', port: step.port, username: 'bob',
          authHandler: (methodsLeft: unknown, partial: unknown, next: (method: unknown) => void) => {
            if (++arrived === 6) go();
            void together.then(() => next({ type: 'password', username: 'bob', password: 'builder' }));
          },
        } as ssh2.ConnectConfig);
      })));
      assert.deepEqual(outcomes.filter((outcome) => outcome === 'logged in').length, 2, outcomes.join(', '));
      await waitFor('the refusal', () => count(step, / refused: 2 connections are logged in \(MAX_CONNECTIONS\)$/gm) || undefined);
    } finally {
      for (const client of clients) client.end();
      await step.stop();
    }
  });
});

describe('startups, as sshd 9.8 limits them', { timeout: 120_000 }, () => {
  test('ten slot holders from one address do not lock out another address', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { MAX_STARTUPS: '10' } });
    const holders = Array.from({ length: 10 }, () => slotHolder(step.port, '127.0.0.1'));
    try {
      await waitFor('five admitted, five refused', () =>
        (holders.filter((h) => h.received().startsWith('SSH-2.0-')).length === 5
          && holders.filter((h) => h.socket.destroyed).length === 5) || undefined);
      // One line for the five refusals: an address refused again within ten seconds is counted, not logged.
      assert.equal(count(step, /refused: 5 connections from this address are already logging in \(PER_SOURCE_MAX_STARTUPS\)$/gm), 1);
      // From another address, ten logins in a row all get in while the five still hold their places.
      for (let i = 0; i < 10; i++) {
        const result = await ssh(step.port, 'alice', 'wonderland', ['-T', '-b', '127.0.0.2'], '');
        assert.equal(result.stdout, 'This session is very simple. Goodbye!\r\n', result.stderr);
      }
    } finally {
      for (const holder of holders) holder.socket.destroy();
      await step.stop();
    }
  });

  test('MAX_STARTUPS START:RATE:FULL refuses at random from START, and always at FULL', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { MAX_STARTUPS: '2:50:6' } });
    const holders = Array.from({ length: 30 }, (_, i) => slotHolder(step.port, `127.0.1.${i + 1}`));
    try {
      await waitFor('every connection answered or refused', () =>
        holders.every((h) => h.received().startsWith('SSH-2.0-') || h.socket.destroyed) || undefined);
      const admitted = holders.filter((h) => !h.socket.destroyed).length;
      assert.ok(admitted >= 2 && admitted <= 6, `${admitted} admitted`);
      assert.equal(count(step, /\(MAX_STARTUPS\)$/gm), 30 - admitted);
    } finally {
      for (const holder of holders) holder.socket.destroy();
      await step.stop();
    }
  });

  test('an address whose connections keep ending without a login is refused for a while; others are not', async () => {
    const step = await startStep('03-trivial-channel.ts', { env: { SOURCE_PENALTY_MAX: '60' } });
    const penalized = /^127\.0\.0\.3:\d+ its connections keep ending without logging in: the address is refused for 1[56] s$/gm;
    try {
      // Each such connection adds a second; from 15 seconds on, the penalty is enforced (as sshd's defaults).
      let connections = 0;
      while (count(step, penalized) === 0 && connections < 30) {
        const holder = slotHolder(step.port, '127.0.0.3');
        await waitFor('the version line', () => holder.received().startsWith('SSH-2.0-') || undefined);
        holder.socket.destroy();
        connections += 1;
        await waitFor('the close', () => count(step, / connection closed$/gm) === connections || undefined);
      }
      // At least 15; a few more on a slow machine, as the penalty runs down while they are made.
      assert.ok(connections >= 15 && connections <= 25, `${connections} connections`);
      const refused = slotHolder(step.port, '127.0.0.3');
      await waitFor('the refusal', () => refused.socket.destroyed || undefined);
      assert.equal(refused.received(), '');
      const result = await ssh(step.port, 'alice', 'wonderland', ['-T', '-b', '127.0.0.4'], '');
      assert.equal(result.stdout, 'This session is very simple. Goodbye!\r\n');
    } finally {
      await step.stop();
    }
  });

  test('guessing spread over many addresses is logged as such', async () => {
    const step = await startStep('03-trivial-channel.ts');
    try {
      for (let i = 0; i < 50; i++) {
        const client = new ssh2.Client();
        const failed = new Promise((resolve) => client.on('error', resolve));
        client.connect({ host: '127.0.0.1', port: step.port, localAddress: `127.0.2.${i + 1}`, username: 'alice', password: 'guess' });
        await failed;
        client.end();
      }
      await waitFor('the summary', () => count(step, /^all addresses: 50 failed logins in the last minute, from 50 addresses$/gm) === 1 || undefined);
    } finally {
      await step.stop();
    }
  });
});

describe('logs that a client cannot forge or flood', { timeout: 60_000 }, () => {
  const step = useStep('03-trivial-channel.ts');

  /** An unencrypted SSH_MSG_DISCONNECT (RFC 4253, 11.1) with the client's own description. */
  function disconnectPacket(description: string): Buffer {
    const text = Buffer.from(description);
    const payload = Buffer.alloc(1 + 4 + 4 + text.length + 4);
    payload[0] = 1;
    payload.writeUInt32BE(2, 1); // protocol error: not "by application", so ssh2 reports it
    payload.writeUInt32BE(text.length, 5);
    text.copy(payload, 9);
    return plainPacket(payload);
  }

  async function disconnectWith(description: string): Promise<void> {
    const socket = connect(step().port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume(); // read, so that the server's close is seen
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('SSH-2.0-forger\r\n');
    socket.write(disconnectPacket(description));
    await new Promise((resolve) => socket.once('close', resolve));
  }

  test('control characters, newlines and direction overrides come out escaped', async () => {
    await disconnectWith('bye\n127.0.0.1:1 authenticated as root\r\x1b[2J\u202egnp.exe');
    await waitFor('the line', () => count(step(), /error: bye/g) === 1 || undefined);
    assert.doesNotMatch(step().output(), /^127\.0\.0\.1:1 authenticated as root/m);
    await logged(step(), /error: bye\\x0a127\.0\.0\.1:1 authenticated as root\\x0d\\x1b\[2J\\u\{202e\}gnp\.exe$/m);
  });

  test('a long message is cut to one short line', async () => {
    await disconnectWith(`long${'x'.repeat(30_000)}`);
    await waitFor('the line', () => count(step(), /error: longx/g) === 1 || undefined);
    const line = step().output().split('\n').find((l) => l.includes('error: longx'))!;
    assert.ok(line.length < 400, `${line.length} characters`);
    assert.match(line, /\.\.\. \(\d+ more characters\)$/);
  });
});

describe('the smaller holes', { timeout: 120_000 }, () => {
  test('when the password file holds a hash, every attempt costs one scrypt: plain, hashed or unknown user', async () => {
    const file = join(temporaryDir(), 'passwords');
    writeFileSync(file, `alice:wonderland\ncarol:${await hashPassword('tortoise')}\n`);
    const step = await startStep('03-trivial-channel.ts', { env: { SSH_PASSWORDS: file }, preload: ['./test/spy-scrypt.ts'] });
    try {
      for (const [username, password] of [['alice', 'wrong'], ['carol', 'wrong'], ['nobody', 'wrong'], ['alice', 'wonderland']]) {
        const before = count(step, /^scrypt called$/gm);
        const client = new ssh2.Client();
        await new Promise((resolve) => {
          client.on('error', resolve);
          client.on('ready', () => resolve(undefined));
          client.connect({ host: '127.0.0.1', port: step.port, username, password });
        });
        client.end();
        assert.equal(count(step, /^scrypt called$/gm) - before, 1, `${username} with ${password}`);
      }
    } finally {
      await step.stop();
    }
  });

  for (const file of ['09-public-key-auth.ts', '10-window-change.ts']) {
    test(`${file}: an RSA key signing with SHA-1 is refused, whatever algorithm name the client claims`, async () => {
      const keys = temporaryDir();
      const pair = ssh2.utils.generateKeyPairSync('rsa', { bits: 2048 });
      writeFileSync(join(keys, 'alice'), `${pair.public}\n`);
      const privatePem = (ssh2.utils.parseKey(pair.private) as ssh2.ParsedKey).getPrivatePEM();
      const step = await startStep(file, { env: { SSH_AUTHORIZED_KEYS_DIR: keys } });
      try {
        const outcomes: string[] = [];
        for (const claimed of ['ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-256']) {
          outcomes.push(await new Promise<string>((resolve) => {
            const client = new ssh2.Client();
            client.on('ready', () => (client.end(), resolve(`${claimed}: logged in`)));
            client.on('error', () => resolve(`${claimed}: refused`));
            client.connect({
              host: '127.0.0.1', port: step.port, username: 'alice',
              // Skips ssh2's own choice of method: one publickey request, signed with SHA-1, under the claimed name.
              authHandler: () => raw(client).authPK('alice', pair.public, claimed, (data, done) => done(sign('sha1', data, privatePem))),
            });
          }));
        }
        assert.deepEqual(outcomes, ['ssh-rsa: refused', 'ssh-ed25519: refused', 'ecdsa-sha2-nistp256: refused', 'rsa-sha2-256: refused']);
        // The same key signing with SHA-2 logs in: the refusals were about the hash.
        const client = new ssh2.Client();
        await new Promise((resolve, reject) => {
          client.on('ready', () => resolve(undefined));
          client.on('error', reject);
          client.connect({ host: '127.0.0.1', port: step.port, username: 'alice', privateKey: pair.private });
        });
        client.end();
      } finally {
        await step.stop();
      }
    });
  }

  test('host keys: a folder every user may write to, or a key others may read, stops the step with one line', async () => {
    const open = join(temporaryDir(), 'keys');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.deepEqual(await runStep('01-no-login.ts', [], { HOST_KEYS_DIR: open }), {
      stdout: '', status: 1,
      stderr: `error: the host key folder ${open} can be written by every user, who could plant a key or a link in it; `
        + `make it yours: chmod o-w ${open}\n`,
    });
    const readable = temporaryDir();
    const key = join(readable, 'ssh_host_ed25519_key');
    writeFileSync(key, ssh2.utils.generateKeyPairSync('ed25519').private, { mode: 0o644 });
    chmodSync(key, 0o644);
    assert.deepEqual(await runStep('01-no-login.ts', [], { HOST_KEYS_DIR: readable }), {
      stdout: '', status: 1,
      stderr: `error: host key ${key} can be read or changed by other users (mode 0644), as sshd refuses too; `
        + `make it yours alone: chmod 600 ${key}\n`,
    });
  });
});
