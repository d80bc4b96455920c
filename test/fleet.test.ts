// Step 21, the fleet: two machines (each a step process on its own loopback address, with its own host key and
// certificate) behind a real HAProxy, sharing a real store: Debian 12's redis-server 7, then Valkey 9 from the
// Debian testing root. Real OpenSSH clients in real terminals; the store killed, hung and lied to.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { peakDuring, residentMiB, sendWithoutReading } from './hostile.ts';
import { count, debianTesting, freePort, guarded, logged, root, ssh, sshEnv, sshOptions, type SshResult, startHaproxy, startStep, type Step, temporaryDir, Terminal, waitFor } from './helpers.ts';

/** A store on `port`: Debian 12's redis-server, or valkey-server run in the Debian testing root. */
function startStore(kind: 'redis' | 'valkey', port: number): ChildProcess {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = kind === 'redis' ? spawn('redis-server', args, { stdio: 'ignore' })
    : spawn('chroot', [debianTesting(), 'valkey-server', ...args], { stdio: 'ignore' });
  // One that cannot be started says why here; the wait for it to answer then fails.
  child.on('error', (err) => console.log(`${kind}: ${err.message}`));
  return child;
}

/** Where the RESP value that starts at `at` ends in `text` (read as latin1: a character a byte), or -1 if not there yet. */
function respEnd(text: string, at = 0): number {
  const line = text.indexOf('\r\n', at);
  if (line === -1) return -1;
  const size = Number(text.slice(at + 1, line));
  if (text[at] === '$') return size < 0 ? line + 2 : text.length >= line + 4 + size ? line + 4 + size : -1;
  if (text[at] !== '*') return line + 2; // a simple string, an error or an integer: one line
  let end = line + 2;
  for (let i = 0; i < size && end !== -1; i++) end = respEnd(text, end);
  return end;
}

/** Sends one command to the store as redis-cli would (RESP), and resolves with its raw answer, once it is whole. */
function storeCommand(port: number, ...words: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setEncoding('latin1');
    let answer = '';
    socket.on('error', reject);
    socket.on('data', (chunk: string) => {
      answer += chunk;
      if (respEnd(answer) === answer.length) socket.end(() => resolve(answer));
    });
    socket.write(`*${words.length}\r\n${words.map((word) => `$${Buffer.byteLength(word)}\r\n${word}\r\n`).join('')}`);
  });
}

/** Polls `check` until it resolves to true; fails after `ms`. (The 50 ms is the time between two tries, not a wait.) */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check());) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function storeUp(port: number): Promise<void> {
  return until(`a store answering on port ${port}`, async () => await storeCommand(port, 'PING').catch(() => '') === '+PONG\r\n');
}

/** Whether anything listens on 127.0.0.1:`port`, read from /proc/net/tcp (a connection to find out would be a client). */
function listeningOn(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').some((line) => {
    const [, address, , state] = line.trim().split(/\s+/);
    return address === local && state === '0A'; // TCP_LISTEN
  });
}

/** Bytes sent to 127.0.0.1:`port` that the process listening there has not read yet, on all its connections (/proc/net/tcp). */
function unreadAt(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').reduce((sum, line) => {
    const [, address, , state, queues] = line.trim().split(/\s+/);
    return address === local && state === '01' ? sum + parseInt(queues!.split(':')[1]!, 16) : sum; // TCP_ESTABLISHED
  }, 0);
}

/** How many of `machine`'s entries in the room's list of who is online (shared/channels/fleet-room.ts) have not expired. */
async function listedFrom(storePort: number, machine: string): Promise<number> {
  const script = `local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) local n = 0
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local ok, fields = pcall(cjson.decode, entry)
  if ok and type(fields) == 'table' and fields[1] == ARGV[1] then n = n + 1 end
end
return n`;
  const answer = await storeCommand(storePort, 'EVAL', script, '1', 'room:online', machine);
  assert.match(answer, /^:\d+\r\n$/);
  return Number(answer.slice(1));
}

/** A TCP connection from `from` that waits for the server's version line, then closes: one that did not log in. */
function noLogin(host: string, port: number, from: string): Promise<'banner' | 'closed'> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, localAddress: from });
    socket.on('error', () => {});
    socket.once('data', () => {
      resolve('banner');
      socket.destroy();
    });
    socket.once('close', () => resolve('closed'));
  });
}

/** `ssh -T` as `alice` from the address `from` to `host`: logged in, the room answers that it needs a terminal. */
function login(port: number, host: string, from: string): Promise<SshResult> {
  return ssh(port, 'alice', 'wonderland', ['-o', `HostName=${host}`, '-b', from, '-T']);
}
const NEEDS_TERMINAL = 'The chat room needs a terminal, to edit your line as you type: connect from one, without -T (ssh -tt forces one).\n';

/** A person in the room: OpenSSH in a tmux terminal, logged in to `host` from the address `from`. */
function chatter(port: number, host: string, from: string, user: string, password: string): Terminal {
  return new Terminal(['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', '-o', `HostName=${host}`, '-b', from,
    '-p', String(port), `${user}@localhost`], sshEnv(password));
}

/** How many rows of the terminal's whole history are `row`: a row shown again is told from the one shown before. */
function times(terminal: Terminal, row: string): number {
  return terminal.history().filter((each) => each === row).length;
}
const unreachable = (machine: string) => `* the store is unreachable: this room is local-only (${machine}) until it returns`;
const BACK = '* the store is back: the room spans the fleet again';

/** Waits until a row of the terminal's screen matches `row`; resolves with the screen. */
function seen(terminal: Terminal, row: string | RegExp, ms = 20_000): Promise<string[]> {
  return waitFor(`${row} on the screen`, () => {
    const screen = terminal.screen();
    return screen.some((each) => (typeof row === 'string' ? each === row : row.test(each))) ? screen : undefined;
  }, ms);
}

for (const kind of ['redis', 'valkey'] as const) {
  describe(`step 21: two machines behind HAProxy, sharing ${kind === 'redis' ? "Debian 12's redis-server" : 'Valkey 9'}`,
    { timeout: 240_000 }, () => {
      const dir = temporaryDir();
      let storePort = 0;
      let store: ChildProcess | undefined;
      let haproxy: ChildProcess | undefined;
      let front = 0;
      const machines: Record<'a' | 'b', { host: string; step?: Step; keys: string }> = {
        a: { host: '127.0.0.2', keys: join(dir, 'a') },
        b: { host: '127.0.0.3', keys: join(dir, 'b') },
      };
      const terminals: Terminal[] = [];
      // Each test comes from addresses of its own, so that one's penalties do not reach another.
      const from = (n: number) => `127.0.0.${(kind === 'redis' ? 10 : 60) + n}`;

      // The demo accounts, and one for the test whose sessions come and go: a user's arrivals are counted.
      const passwords = join(dir, 'ssh-passwords');
      writeFileSync(passwords, 'alice:wonderland\nbob:builder\ndodo:race\n');

      const machineEnv = (name: string, keys: string) => ({
        STORE_URL: `redis://127.0.0.1:${storePort}`, MACHINE: name, HOST_KEYS_DIR: keys, SSH_PASSWORDS: passwords,
        PROXY_PROTOCOL_FROM: '127.0.0.1', SOURCE_PENALTY_MAX: '600', AUTH_PENALTY_MAX: '8',
      });

      before(async () => {
        storePort = await freePort();
        store = startStore(kind, storePort);
        await storeUp(storePort);
        // A host CA, and each machine's own host keys, made with ssh-keygen and signed by it with `npm run host-cert`.
        spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleet host CA', '-f', join(dir, 'ca')]);
        for (const [name, machine] of Object.entries(machines)) {
          mkdirSync(machine.keys, { mode: 0o700 });
          for (const type of ['ed25519', 'rsa']) {
            spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', join(machine.keys, `ssh_host_${type}_key`)]);
          }
          const signed = spawnSync('npm', ['run', '-s', 'host-cert', '--', join(dir, 'ca'), 'localhost', machine.host],
            { cwd: root, env: { ...process.env, HOST_KEYS_DIR: machine.keys }, encoding: 'utf8' });
          assert.equal(signed.status, 0, signed.stderr);
          writeFileSync(join(dir, 'known_hosts'), `${signed.stdout.split('\n').find((line) => line.startsWith('@cert-authority'))}\n`);
          machine.step = await startStep('21-fleet.ts', { args: ['--host', machine.host], env: machineEnv(name, machine.keys) });
          await waitFor('the store', () => /store \S+: connected$/m.test(machine.step!.output()) || undefined);
        }
        ({ port: front, process: haproxy } = await startHaproxy(dir, Object.values(machines).map((m) => `${m.host}:${m.step!.port}`)));
        // HAProxy counts its servers up from the start (its init-state): once it listens, it serves.
        await waitFor('HAProxy listening', () => listeningOn(front) || undefined);
        assert.deepEqual(await login(front, 'localhost', from(0)), { stdout: '', stderr: NEEDS_TERMINAL, status: 1 });
      });
      after(async () => {
        for (const terminal of terminals) terminal.close();
        haproxy?.kill('SIGKILL');
        for (const machine of Object.values(machines)) {
          await machine.step?.stop('SIGKILL');
          assert.doesNotMatch(machine.step?.output() ?? '', /^internal error/m);
        }
        store?.kill('SIGKILL');
      });
      const A = () => machines.a.step!;
      const B = () => machines.b.step!;
      /** ssh2's client logged in to A from `address`, and its shell in a terminal `cols` wide (ended if that fails). */
      async function shellOnA(address: string, username: string, password: string, cols: number) {
        const client = new ssh2.Client();
        client.on('error', () => {});
        await new Promise<void>((resolve) => client.once('ready', () => resolve()).connect({ host: '127.0.0.2', port: A().port,
          localAddress: address, username, password }));
        const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
          client.shell({ term: 'xterm', cols, rows: 30 }, (err, c) => (err ? reject(err) : resolve(c)))).catch((err) => {
          client.end();
          throw err;
        });
        return { client, channel };
      }

      test('a client with one @cert-authority line logs in to A, to B and through HAProxy, with StrictHostKeyChecking=yes', async () => {
        // `npm run host-cert` printed the line for the names it signed (B's here); the fleet's one line covers all.
        const printed = readFileSync(join(dir, 'known_hosts'), 'utf8');
        assert.match(printed, /^@cert-authority localhost,\[localhost\]:\*,127\.0\.0\.3,\[127\.0\.0\.3\]:\* ssh-ed25519 \S+\n$/);
        writeFileSync(join(dir, 'known_hosts'), printed.replace(/127\.0\.0\.3/g, '127.0.0.?'));
        const strict = (port: number, host: string, knownHosts = join(dir, 'known_hosts')) => new Promise<SshResult>((resolve) => {
          const child = guarded(spawn('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${knownHosts}`,
            '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-b', from(1), '-p', String(port),
            '-T', `alice@${host}`], { env: { ...process.env, ...sshEnv('wonderland') } }));
          let [stdout, stderr] = ['', ''];
          child.stdout.on('data', (chunk) => (stdout += chunk));
          child.stderr.on('data', (chunk) => (stderr += chunk));
          child.stdin.end();
          child.once('close', (status) => resolve({ stdout, stderr, status }));
        });
        for (const [port, host] of [[A().port, '127.0.0.2'], [B().port, '127.0.0.3'], [front, 'localhost'], [front, 'localhost']] as const) {
          assert.deepEqual(await strict(port, host), { stdout: '', stderr: NEEDS_TERMINAL, status: 1 }, `${host}:${port}`);
        }
        // Through HAProxy, one login went to each machine; each served its own key's certificate.
        for (const step of [A(), B()]) assert.ok(count(step, new RegExp(`^${from(1).replaceAll('.', '\\.')}:\\d+ authenticated as alice$`, 'gm')) >= 2);
        // Another CA's line alone: no machine is trusted, and there is no prompt.
        spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'other-ca')]);
        writeFileSync(join(dir, 'other_known_hosts'), `@cert-authority localhost ${readFileSync(join(dir, 'other-ca.pub'), 'utf8')}`);
        const untrusted = await strict(A().port, '127.0.0.2', join(dir, 'other_known_hosts'));
        assert.equal(untrusted.status, 255);
        assert.match(untrusted.stderr, /Host key verification failed\.\r?\n$/);
      });

      test('a message typed on A is seen on B; /who says who is on which machine; the store\'s bytes are made safe', async () => {
        const alice = chatter(A().port, '127.0.0.2', from(2), 'alice', 'wonderland');
        terminals.push(alice);
        await seen(alice, /^Welcome, alice, on a\. 1 here;/);
        await seen(alice, '* alice joined'); // through the store: the room works
        const bob = chatter(B().port, '127.0.0.3', from(2), 'bob', 'builder');
        terminals.push(bob);
        await seen(bob, /^Welcome, bob, on b\. 2 here;/);
        await seen(alice, '* bob joined');
        alice.sendKeys('-l', 'hello from a');
        alice.sendKeys('Enter');
        await seen(bob, 'alice: hello from a');
        await bob.typeLine('/who', '* here: alice (a), bob (b)');
        // Anyone who can publish in the store is not trusted with bob's terminal: escapes are shown escaped, and what
        // is not the room's is dropped.
        for (const message of ['not json', '{"kind":"said"}', JSON.stringify({ kind: 'said', name: 'x', text: 'y'.repeat(20_000), machine: 'a' }),
          JSON.stringify({ kind: 'said', name: 'mallory\x1b]0;owned\x07', text: '\x1b[2Jcleared?', machine: 'a' })]) {
          await storeCommand(storePort, 'PUBLISH', 'room', message);
        }
        await seen(bob, 'mallory\\x1b]0;owned\\x07: \\x1b[2Jcleared?');
        assert.equal(bob.screen().filter((row) => row.includes('yyyy')).length, 0);
        assert.notEqual(bob.display('#{pane_title}'), 'owned');
      });

      test('25 connections from one address that end without a login on A: refused on B, while others log in to B', async () => {
        const outcomes: string[] = [];
        for (let i = 0; i < 25; i++) outcomes.push(await noLogin('127.0.0.2', A().port, from(3)));
        assert.ok(outcomes.slice(0, 14).every((outcome) => outcome === 'banner'), outcomes.join(' '));
        assert.equal(outcomes.at(-1), 'closed');
        await waitFor('A\'s line', () => count(A(), /its connections keep ending without logging in: the address is refused for \d+ s on every machine of the fleet$/gm) || undefined);
        // B never saw this address before: it is refused at its first byte, by the store's word.
        assert.equal(await noLogin('127.0.0.3', B().port, from(3)), 'closed');
        assert.equal(count(B(), new RegExp(`^${from(3).replaceAll('.', '\\.')}:\\d+ refused: this address is serving a penalty for connections that did not log in, on this fleet$`, 'gm')), 1);
        const refused = await login(B().port, '127.0.0.3', from(3));
        assert.equal(refused.status, 255);
        assert.deepEqual(await login(B().port, '127.0.0.3', from(4)), { stdout: '', stderr: NEEDS_TERMINAL, status: 1 });
        // Through HAProxy, whichever machine it picks: the address the PROXY header gives is refused.
        for (let i = 0; i < 2; i++) assert.equal((await login(front, 'localhost', from(3))).status, 255);
        assert.equal((await login(front, 'localhost', from(4))).status, 1);
      });

      test('PER_SOURCE_MAX_STARTUPS counts an address\'s connections logging in on every machine', async () => {
        // Five connections from one address that hold their places on A, saying nothing: a sixth, to B, is refused.
        const held = await Promise.all(Array.from({ length: 5 }, () => new Promise<import('node:net').Socket>((resolve) => {
          const socket = connect({ host: '127.0.0.2', port: A().port, localAddress: from(9) }, () => resolve(socket));
          socket.on('error', () => {});
        })));
        await waitFor('A to count them', () => count(A(), new RegExp(`^${from(9).replaceAll('.', '\\.')}:\\d+ connection opened$`, 'gm')) === 5 || undefined);
        assert.equal(await noLogin('127.0.0.3', B().port, from(9)), 'closed');
        await logged(B(), /:\d+ refused: 5 connections from this address are already logging in, on this fleet \(PER_SOURCE_MAX_STARTUPS\)$/m);
        for (const socket of held) socket.destroy();
        // A's count in the store goes as A sees them close: then B lets the address in again.
        await until('A to let the five go in the store', async () =>
          await storeCommand(storePort, 'ZCARD', `startups:${from(9)}`) === ':0\r\n');
        assert.equal(await noLogin('127.0.0.3', B().port, from(9)), 'banner');
      });

      test('hostile: user names of 30 kB, each new, from many addresses: the store keeps short keys that expire', async () => {
        const attempt = (i: number) => new Promise<void>((resolve) => {
          const client = new ssh2.Client();
          client.on('error', () => resolve()).on('close', () => resolve());
          client.connect({ host: i % 2 ? '127.0.0.3' : '127.0.0.2', port: i % 2 ? B().port : A().port, localAddress: from(40 + (i % 5)),
            username: `${i}`.padEnd(30_000, 'x'), password: 'wrong', tryKeyboard: false, readyTimeout: 20_000 });
        });
        // Four at a time: under MAX_STARTUPS (10 logging in at once on a machine, from which some are dropped).
        for (let i = 0; i < 20; i += 4) await Promise.all([i, i + 1, i + 2, i + 3].map(attempt));
        // Each is noted as its connection ends: the last ones may reach the store after the client has seen the end.
        const failedUsers = async () => (await storeCommand(storePort, 'KEYS', 'failed-user:*')).split('\r\n')
          .filter((line) => line.startsWith('failed-user:'));
        await until('20 keys', async () => (await failedUsers()).length >= 20);
        const keys = await failedUsers();
        assert.equal(keys.length, 20);
        assert.ok(keys.every((key) => key.length === 'failed-user:'.length + 22), keys.join(' '));
        const ttl = await storeCommand(storePort, 'PTTL', keys[0]!);
        assert.match(ttl, /^:\d+\r\n$/);
        assert.ok(Number(ttl.slice(1)) > 0 && Number(ttl.slice(1)) <= 60_000, ttl);
        assert.equal((await login(A().port, '127.0.0.2', from(45))).status, 1);
      });

      test('hostile: a client that never reads, typing keys that redraw its long line, is read no more, and A stays small', async () => {
        const { client, channel } = await shellOnA(from(13), 'alice', 'wonderland', 1000);
        try {
          let shown = '';
          channel.on('data', (chunk: Buffer) => (shown += chunk));
          channel.write('x'.repeat(300));
          await waitFor('the line drawn', () => shown.includes('x'.repeat(300)) || undefined);
          channel.pause(); // from now on, nothing is read: each packet of 16 right-arrows still redraws the line
          const before = residentMiB(A().pid);
          let taken = 0;
          const peak = await peakDuring(A().pid, async () => (taken = await sendWithoutReading(channel, 8 * 1024 * 1024, 2000,
            Buffer.from('\x1b[C'.repeat(16)))));
          assert.ok(taken < 4 * 1024 * 1024, `A took ${taken} bytes`);
          assert.ok(peak - before < 64, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
        } finally {
          client.end();
        }
      });

      test('hostile: 2,000 lines of /who pasted at once ask the store no more than CHAT_RATE allows; the rest are told to slow down', async () => {
        const { client, channel } = await shellOnA(from(14), 'bob', 'builder', 200);
        try {
          let shown = '';
          channel.on('data', (chunk: Buffer) => (shown += chunk));
          await waitFor('the welcome', () => shown.includes('Welcome, bob') || undefined);
          const answers = () => ({ who: shown.split('* here: ').length - 1, slowDown: shown.split('* slow down: ').length - 1 });
          channel.write('/who\r'.repeat(2000));
          // Unpatched, each was a script run on the store, 2,000 at once: logins took seconds, and the store was
          // judged unreachable.
          await waitFor('an answer to every line', () => (answers().who + answers().slowDown === 2000) || undefined);
          assert.ok(answers().who <= 10, `${answers().who} lines of /who were asked of the store`);
        } finally {
          client.end();
        }
      });

      test('hostile: sessions opened and closed in a loop are CHAT_RATE arrivals at most, each announced; the rest told to slow down', async () => {
        // Each arrival asks the store who is here, and is a "joined" and a "left" line to everyone: a loop of
        // sessions once sent another user 41,524 of them in 30 s, and her logins took 193 ms instead of 7.
        const watcher = await shellOnA(from(15), 'bob', 'builder', 200);
        const churner = await shellOnA(from(16), 'dodo', 'race', 80);
        try {
          let shown = '';
          watcher.channel.on('data', (chunk: Buffer) => (shown += chunk));
          churner.channel.end(); // the first session: out again at once (Ctrl-D), as the 24 after it
          const refusals: boolean[] = [];
          for (let i = 0; i < 24; i++) {
            refusals.push(await new Promise<boolean>((resolve, reject) => churner.client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, channel) => {
              if (err) return reject(err);
              let said = '';
              channel.on('data', (chunk: Buffer) => (said += chunk)).stderr.on('data', (chunk: Buffer) => (said += chunk));
              channel.on('data', () => said.includes('Welcome') && channel.end());
              channel.on('close', () => resolve(said.includes('* slow down: at most 10 arrivals in 10 seconds (CHAT_RATE)')));
            })));
          }
          // The first session and 9 more; then every one is refused.
          assert.deepEqual(refusals, [...Array(9).fill(false), ...Array(15).fill(true)]);
          // Answered after the lines about dodo before it (or told to slow down: the test before spent bob's CHAT_RATE).
          watcher.channel.write('/who\r');
          await waitFor('the answer to /who', () => /\* here: |\* slow down: at most 10 messages/.test(shown) || undefined);
          assert.ok(shown.split('* dodo joined').length - 1 <= 10, 'dodo joined more than 10 times');
        } finally {
          churner.client.end();
          watcher.client.end();
        }
      });

      test('failed logins for one user, from many addresses, slow down that user\'s answers on every machine', async () => {
        // Thirteen connections that fail as carol (unknown), from thirteen addresses, spread over A and B.
        for (let i = 0; i < 13; i++) {
          const result = await ssh(i % 2 ? B().port : A().port, 'carol', 'wrong', ['-o', `HostName=${i % 2 ? '127.0.0.3' : '127.0.0.2'}`,
            '-b', from(20 + i), '-o', 'NumberOfPasswordPrompts=1', '-T']);
          assert.equal(result.status, 255);
        }
        const started = Date.now();
        assert.equal((await ssh(A().port, 'carol', 'wrong', ['-o', 'HostName=127.0.0.2', '-b', from(19), '-o', 'NumberOfPasswordPrompts=1', '-T'])).status, 255);
        const waited = Date.now() - started;
        const quick = Date.now();
        assert.equal((await login(A().port, '127.0.0.2', from(19))).status, 1);
        assert.ok(waited >= 1000, `carol's answer waited ${waited} ms`);
        const failing = /:\d+ user carol, on this fleet, keeps failing to log in: answers to it now wait, up to 8 s$/m;
        await waitFor('the line of a failing user', () => failing.test(A().output() + B().output()) || undefined);
        console.log(`a failing user from a new address: ${waited} ms; alice from it: ${Date.now() - quick} ms`);
      });

      test('the store hung (SIGSTOP): logins do not hang; then the store killed: both machines serve, with their own limits', async () => {
        const [alice, bob] = terminals as [Terminal, Terminal];
        // A second session of alice's on A, which leaves while the store hangs.
        const leaving = chatter(A().port, '127.0.0.2', from(12), 'alice', 'wonderland');
        terminals.push(leaving);
        await seen(leaving, /^Welcome, alice, on a\./);
        await until('both of alice\'s sessions listed', async () => await listedFrom(storePort, 'a') === 2);

        process.kill(store!.pid!, 'SIGSTOP');
        const started = Date.now();
        // Said in the hang's first second: A sends it, and the store does not answer in time. Shown on A at once.
        alice.sendKeys('-l', 'in the hang');
        alice.sendKeys('Enter');
        assert.equal((await login(A().port, '127.0.0.2', from(5))).status, 1);
        const hung = Date.now() - started;
        assert.ok(hung < 8000, `a login with the store hung took ${hung} ms`);
        await waitFor('the line', () => /^store \S+: unreachable \(Command timed out\)/m.test(A().output()) || undefined);
        await seen(alice, 'alice: in the hang');
        await seen(alice, unreachable('a'));
        leaving.sendKeys('-l', '/quit');
        leaving.sendKeys('Enter');
        assert.equal(await waitFor('the leaving session to end', () => leaving.exitStatus()), 0);
        process.kill(store!.pid!, 'SIGCONT');
        // (B may have found it hung too, with no login to ask for it: its room renews who is online every 5 s.)
        // (The lines that say a login found it slow, or in time again, are not about whether it is reachable.)
        const lastStoreLine = (step: Step) => step.output().match(/^store (?!\S+: (slow|answering in time)).*$/gm)?.at(-1) ?? '';
        await waitFor('the store back', () => [A(), B()].every((step) => /: (reachable again|connected)/.test(lastStoreLine(step))) || undefined);
        assert.equal(count(A(), /^store \S+: reachable again: the limits and the chat room are the fleet's again$/gm), 1);
        // What the store was sent while it hung, it runs when it wakes: a call that timed out may still happen. The
        // line reaches B late, and is shown once on A: its late copy from the store is dropped (a line said after
        // it, seen on A through the store, came after that copy on the same connection).
        await seen(bob, 'alice: in the hang');
        alice.sendKeys('-l', 'after the hang');
        alice.sendKeys('Enter');
        await seen(alice, 'alice: after the hang');
        assert.equal(times(alice, 'alice: in the hang'), 1);
        // The login's place among the address's connections logging in, taken late by the store, is given back, and
        // the session that left in the hang leaves the list of who is online: well before either would expire.
        await until('the login\'s place given back', async () => await storeCommand(storePort, 'ZCARD', `startups:${from(5)}`) === ':0\r\n', 3000);
        await until('alice\'s session that left, gone from the list', async () => await listedFrom(storePort, 'a') === 1, 3000);

        // Killed with a call of A's on its way: stopped first, the store has not read it (a connection opening on A asks
        // the store first). That call fails with the connection, and must say no more than the connection does.
        const before = [A().output().length, B().output().length];
        const down = [times(alice, unreachable('a')), times(bob, unreachable('b'))];
        process.kill(store!.pid!, 'SIGSTOP');
        const opening = noLogin('127.0.0.2', A().port, from(10));
        await waitFor('a call unread by the store', () => unreadAt(storePort) > 0 || undefined);
        store!.kill('SIGKILL');
        assert.equal(await opening, 'banner'); // let in by A's own limits
        // (Rows counted over each whole history: the same rows came in the hang.)
        await waitFor('A\'s room local-only again', () => times(alice, unreachable('a')) > down[0]! || undefined);
        await waitFor('B\'s room local-only again', () => times(bob, unreachable('b')) > down[1]! || undefined);
        // One line each, however many calls failed. It names what failed first: the connection closed, or reset (the
        // store had not read all that was sent to it), or a call not answered in time (it was stopped a moment).
        for (const [i, step] of [A(), B()].entries()) {
          await waitFor('the line', () => /^store .*unreachable/m.test(step.output().slice(before[i])) || undefined);
        }
        // A wait, not a condition: the reconnections each machine makes meanwhile (after 0.25, 0.75 and 1.5 s) must
        // say nothing. Until this change, the call on its way said `Reached the max retries per request limit`.
        await new Promise((resolve) => setTimeout(resolve, 2000));
        for (const [i, step] of [A(), B()].entries()) {
          // (The connection that asked the store in vain first says it is slow, once: a line of its own.)
          const lines = (step.output().slice(before[i]).match(/^store .*$/gm) ?? []).filter((line) => !line.includes(': slow (no answer in 100 ms)'));
          assert.equal(lines.length, 1, lines.join('\n'));
          assert.match(lines[0]!, new RegExp(`^store redis://127\\.0\\.0\\.1:${storePort}: unreachable \\((the connection closed|read ECONNRESET|`
            + 'Command timed out)\\): this machine keeps its own limits, and its chat room is local-only, until the store answers; reconnecting$'));
        }
        assert.deepEqual(await login(A().port, '127.0.0.2', from(6)), { stdout: '', stderr: NEEDS_TERMINAL, status: 1 });
        assert.deepEqual(await login(B().port, '127.0.0.3', from(6)), { stdout: '', stderr: NEEDS_TERMINAL, status: 1 });
        await bob.typeLine('/who', '* here: bob (b)');
        await seen(bob, '* the store is unreachable: this room is local-only (b)');
        // Fail safe: A still refuses an address that keeps connecting without logging in, by its own count alone.
        const outcomes: string[] = [];
        for (let i = 0; i < 25; i++) outcomes.push(await noLogin('127.0.0.2', A().port, from(7)));
        assert.equal(outcomes.at(-1), 'closed');
        await waitFor('A\'s own line', () => count(A(), /its connections keep ending without logging in: the address is refused for \d+ s$/gm) || undefined);
        assert.equal(await noLogin('127.0.0.3', B().port, from(7)), 'banner'); // B could not be told

        // The store back (empty, as after a crash): within 10 s the room spans both machines again.
        const restarted = Date.now();
        const backs = [times(alice, BACK), times(bob, BACK)];
        store = startStore(kind, storePort);
        await waitFor('A\'s room back', () => times(alice, BACK) > backs[0]! || undefined, 10_000);
        await waitFor('B\'s room back', () => times(bob, BACK) > backs[1]! || undefined, 10_000);
        alice.sendKeys('-l', 'back together');
        alice.sendKeys('Enter');
        await seen(bob, 'alice: back together', 10_000);
        const took = Date.now() - restarted;
        assert.ok(took < 10_000, `${took} ms`);
        const listed = times(bob, '* here: alice (a), bob (b)');
        bob.sendKeys('-l', '/who');
        bob.sendKeys('Enter');
        await waitFor('/who listing both again', () => times(bob, '* here: alice (a), bob (b)') > listed || undefined);
        console.log(`the store restarted: the room spanned both machines again in ${took} ms`);
      });

      test('machine C drained (SIGTERM, DRAIN_TIMEOUT 1): its people are told, leave, are announced, and leave /who', async () => {
        const bob = terminals[1]!;
        mkdirSync(join(dir, 'c'), { mode: 0o700 });
        const c = await startStep('21-fleet.ts', { args: ['--host', '127.0.0.4'], env: { ...machineEnv('c', join(dir, 'c')), DRAIN_TIMEOUT: '1' } });
        try {
          await waitFor('the store', () => /store \S+: connected$/m.test(c.output()) || undefined);
          const alice = chatter(c.port, '127.0.0.4', from(11), 'alice', 'wonderland');
          terminals.push(alice);
          await seen(alice, /^Welcome, alice, on c\. \d+ here;/);
          await seen(alice, '* alice joined');
          // Rows counted over bob's whole history: the same rows came before.
          const [left, listed] = [times(bob, '* alice left'), times(bob, '* here: alice (a), bob (b)')];
          assert.equal(await c.stop('SIGTERM'), 0);
          // The drain's end: alice is told, and her session ends as by /quit; the store heard it before C ended.
          await seen(alice, '* c is stopping: connect again to go on');
          assert.equal(await waitFor('alice\'s ssh to end', () => alice.exitStatus()), 0);
          await waitFor('bob told that alice left', () => times(bob, '* alice left') === left + 1 || undefined);
          bob.sendKeys('-l', '/who');
          bob.sendKeys('Enter');
          await waitFor('/who without alice on c', () => times(bob, '* here: alice (a), bob (b)') === listed + 1 || undefined);
        } finally {
          await c.stop();
        }
      });

      test('machine A killed: B\'s people go on, HAProxy sends everyone to B, and A leaves "who is online"', async () => {
        const [, bob] = terminals as [Terminal, Terminal];
        process.kill(A().pid, 'SIGKILL');
        const killed = Date.now();
        // Gone once it has exited: until then its listening socket may still take a connection in (that HAProxy would
        // then have sent there, and the kernel then reset), however briefly.
        await A().stop();
        // A renews its people's entries no more: they expire in the store within 15 s (shared/channels/fleet-room.ts).
        assert.equal(await listedFrom(storePort, 'a'), 1, 'alice, on A, still listed just after A was killed');
        await bob.typeLine('still here', 'bob: still here');
        for (let i = 0; i < 3; i++) assert.equal((await login(front, 'localhost', from(8))).status, 1);
        await until('A\'s entries to expire', async () => await listedFrom(storePort, 'a') === 0, 25_000);
        bob.sendKeys('-l', '/who');
        bob.sendKeys('Enter');
        // The answer: the first list on bob's screen after his line above.
        const answered = await waitFor('the answer to /who', () => {
          const screen = bob.screen();
          assert.ok(screen.includes('bob: still here'));
          return screen.slice(screen.lastIndexOf('bob: still here') + 1).find((row) => row.startsWith('* here:'));
        });
        assert.equal(answered, '* here: bob (b)');
        console.log(`A dropped out of who is online ${Date.now() - killed} ms after it was killed`);
      });
    });
}

describe('step 21 with no store to reach', { timeout: 60_000 }, () => {
  test('it starts and serves, says once that the store cannot be reached, and its room says it is local-only', async () => {
    const port = await freePort(); // nothing listens there
    const step = await startStep('21-fleet.ts', { env: { STORE_URL: `redis://127.0.0.1:${port}`, MACHINE: 'alone', AUTH_PENALTY_MAX: '8', SOURCE_PENALTY_MAX: '600' } });
    const alice = chatter(step.port, '127.0.0.1', '127.0.0.1', 'alice', 'wonderland');
    try {
      await seen(alice, /^Welcome, alice, on alone\. 1 here;/);
      await seen(alice, '* the store is unreachable: this room is local-only (alone)');
      await alice.typeLine('hello', 'alice: hello');
      await alice.typeLine('/who', '* here: alice (alone)');
      // A wait, not a condition: the reconnections made meanwhile (after 0.25, 0.75 and 1.5 s) must say nothing more.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.deepEqual(step.output().match(/^store .*$/gm), [`store redis://127.0.0.1:${port}: cannot be reached (connect `
        + `ECONNREFUSED 127.0.0.1:${port}): this machine keeps its own limits, and its chat room is local-only, until the store answers; reconnecting`]);
    } finally {
      alice.close();
      await step.stop('SIGKILL');
    }
    assert.doesNotMatch(step.output(), /^internal error/m);
  });
});

describe('step 21 with its store hung, and STORE_TIMEOUT 30 s', { timeout: 90_000 }, () => {
  test('a login waits for the store 0.1 s at most, says the count is this machine\'s, and its late place is given back', async () => {
    const storePort = await freePort();
    const store = startStore('redis', storePort);
    await storeUp(storePort);
    // Counted unreachable only after 30 s: until then each call waits for the store, and logins must not.
    const step = await startStep('21-fleet.ts', { env: { STORE_URL: `redis://127.0.0.1:${storePort}`, MACHINE: 'hung',
      STORE_TIMEOUT: '30', CHAT_RATE: '100' } });
    const terminals: Terminal[] = [];
    try {
      await waitFor('the store', () => /store \S+: connected$/m.test(step.output()) || undefined);
      store.kill('SIGSTOP');
      // Each login's place among its address's connections logging in, and its welcome: neither waits for the store.
      // (/who, asked once logged in, waits for it as any call does: STORE_TIMEOUT.)
      // (Before, each waited STORE_TIMEOUT for each: 60 s here, past these waits of 20 s.)
      for (const [user, password] of [['alice', 'wonderland'], ['bob', 'builder']] as const) {
        const terminal = chatter(step.port, '127.0.0.1', '127.0.0.1', user, password);
        terminals.push(terminal);
        await seen(terminal, new RegExp(`^Welcome, ${user}, on hung\\. 1 here;`));
        await seen(terminal, '* the store is slow to answer: only this machine\'s people are counted (hung)');
        terminal.sendKeys('-l', '/quit');
        terminal.sendKeys('Enter');
        assert.equal(await waitFor(`${user}'s session to end`, () => terminal.exitStatus()), 0);
      }
      assert.doesNotMatch(step.output(), /^store .*unreachable/m); // not yet 30 s
      assert.equal(count(step, /^store \S+: slow \(no answer in 100 ms\): logins go on with this machine's own limits alone until it answers in time$/gm), 1);
      // A flood of connections meanwhile, each of which asks the store as it ends: at most 1000 calls wait for it at
      // once, and the rest are never sent (each kept, the process would grow by some 5 KB a connection until it wakes).
      const sent = async () => [...(await storeCommand(storePort, 'INFO', 'commandstats')).matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)]
        .reduce((sum, m) => sum + Number(m[1]), 0);
      store.kill('SIGCONT');
      const before = await sent();
      store.kill('SIGSTOP');
      for (let batch = 0; batch < 30; batch++) {
        await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve) => {
          const socket = connect(step.port, '127.0.0.1').on('error', () => resolve()).on('close', () => resolve());
          socket.once('data', () => socket.destroy()); // the step's version line: it ends there, logged in to nothing
        })));
      }
      // What the store was sent meanwhile it runs as it wakes, in order: each place taken late is given back after.
      store.kill('SIGCONT');
      await until('the logins\' places given back', async () => await storeCommand(storePort, 'ZCARD', 'startups:127.0.0.1') === ':0\r\n');
      const during = (await sent()) - before;
      assert.ok(during <= 1050, `${during} calls sent to the hung store`);
    } finally {
      for (const terminal of terminals) terminal.close();
      store.kill('SIGKILL');
      await step.stop('SIGKILL');
    }
    assert.doesNotMatch(step.output(), /^internal error/m);
  });
});
