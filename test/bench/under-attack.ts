// The steps under attack (`--attacks`, and the end of a full run without --only): each attack of test/hostile.ts on a
// step started afresh, its CPU and memory meanwhile, and how another address's logins fare.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { toBase32 } from '../../shared/login/totp.ts';
import { freePort } from '../helpers.ts';
import { escapeFlood, exec, flood, handlersOf, peakDuring, raw, rawSession, ptyStorm, remoteForwardBurst, residentMiB, sendWithoutReading, shell, slotHolder } from '../hostile.ts';
import { alice, type Args, cpuMs, dir, env, keysDir, median, progress, sleep, started, startStep, userKey, userPublicKey } from './harness.ts';
import { close, connect } from './load.ts';

/**
 * Starts `file` afresh, runs `attack` on it, and meanwhile logs in again and again from another address (127.0.0.2,
 * the ssh2 client, password; or `login`), as a user would while the step is attacked. Returns how long the attack
 * took, the CPU time the step spent meanwhile (on the attack and on those logins), its resident memory before and
 * at its highest, and the login latencies.
 */
async function underAttack(file: string, attack: (port: number) => Promise<unknown>, stepEnv: Record<string, string> = {},
  login: (port: number) => Promise<void> = async (port) => close(await connect({ port, localAddress: '127.0.0.2', ...alice.password }))) {
  // With the step's own limits (empty means the default), not those set aside for the load generator above.
  const step = await startStep(file, { ...env, PER_SOURCE_MAX_STARTUPS: '', MAX_CONNECTIONS: '', ...stepEnv });
  const before = residentMiB(step.pid);
  const cpuBefore = cpuMs(step.pid);
  const attackBegun = performance.now();
  let attacking = true;
  const peak = peakDuring(step.pid, async () => {
    await attack(step.port);
    attacking = false;
  });
  const latencies: number[] = [];
  let failed = 0;
  while (attacking) {
    const begun = performance.now();
    try {
      await login(step.port);
      latencies.push(performance.now() - begun);
    } catch {
      failed += 1;
    }
  }
  const peakMiB = await peak;
  const seconds = (performance.now() - attackBegun) / 1000;
  const serverCpuSeconds = (cpuMs(step.pid) - cpuBefore) / 1000;
  await step.stop();
  latencies.sort((a, b) => a - b);
  return {
    seconds, serverCpuSeconds, rssBeforeMiB: before, rssPeakMiB: peakMiB, logins: latencies.length, loginsFailed: failed,
    loginP50ms: median(latencies), loginMaxMs: latencies.at(-1)!,
  };
}

/** A logged-in client of its own, for an attack. */
async function attacker(port: number): Promise<ssh2.Client> {
  const client = await connect({ port, ...alice.password });
  client.on('error', () => {}); // the step may well cut it off
  return client;
}
const GiB = 1024 ** 3;

/** A session of step 18's app on `client`, at `cols` x `rows`, once its first screen has come. */
function drawnApp(client: ssh2.Client, cols: number, rows: number): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.shell({ term: 'xterm', cols, rows }, (err, channel) => {
    if (err) return reject(err);
    let tail = '';
    channel.on('data', (chunk: Buffer) => {
      tail = `${tail}${chunk}`;
      if (tail.includes('Who is who')) resolve(channel);
      tail = tail.slice(-16); // a chunk may end mid-word
    });
  }));
}

/** bob's hundred sessions of step 18's app (ten connections of ten, by his key), each drawn at `cols` x `rows`. */
async function bobsHundredSessions(port: number, cols: number, rows: number): Promise<ssh2.ClientChannel[]> {
  const clients: ssh2.Client[] = [];
  for (let i = 0; i < 10; i++) clients.push((await connect({ port, username: 'bob', privateKey: userKey })).on('error', () => {}));
  return (await Promise.all(clients.map((client) => Promise.all(Array.from({ length: 10 }, () => drawnApp(client, cols, rows)))))).flat();
}

/**
 * alice's key presses, one a call, in a session of step 18's app of her own (opened at the first call, whose time
 * includes her login, from another address): each resolves when the app has answered it.
 */
function aliceTyping(): (port: number) => Promise<void> {
  const people = ['The White Rabbit', 'The Cheshire Cat', 'The Mad Hatter', 'The Queen of Hearts', 'The Caterpillar'];
  let channel: Promise<ssh2.ClientChannel> | undefined;
  let selected = 0;
  return async (port) => {
    channel ??= connect({ port, localAddress: '127.0.0.2', ...alice.password }).then((client) => drawnApp(client, 80, 24));
    const open = await channel;
    selected = (selected + 1) % people.length;
    const chosen = `> ${people[selected]}`; // the row her Down chooses
    await new Promise<void>((resolve) => {
      let tail = '';
      const read = (chunk: Buffer) => {
        tail = `${tail}${chunk}`;
        if (tail.includes(chosen)) resolve(void open.off('data', read));
        tail = tail.slice(-chosen.length); // a chunk may end mid-word
      };
      open.on('data', read);
      open.write('\x1b[B');
    });
  };
}

/**
 * Step 20's inner server, step 14 with its own limits for an address (the bench's are lifted for its load
 * generator), and an agent holding the bench's key, alice's and bob's: started once. Resolves with the bastion's
 * settings, and the agent's socket.
 */
let bastionSetUp: Promise<{ bastionEnv: Record<string, string>; agent: string }> | undefined;
function bastionWithInner() {
  bastionSetUp ??= (async () => {
    const inner = await startStep('14-real-shell.ts', { ...env, SHELL: '/bin/sh', AUTH_PENALTY_MAX: '', SOURCE_PENALTY_MAX: '',
      PER_SOURCE_MAX_STARTUPS: '' });
    const knownHosts = join(dir, 'bastion-known-hosts');
    writeFileSync(knownHosts, execFileSync('ssh-keyscan', ['-p', String(inner.port), 'localhost'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    const agent = join(dir, 'agent.sock');
    started.push(spawn('ssh-agent', ['-D', '-a', agent], { stdio: 'ignore', detached: true }));
    while (!existsSync(agent)) await sleep(10); // the agent's socket, made as it starts
    execFileSync('ssh-add', ['-q', join(dir, 'id_ed25519')], { env: { ...process.env, SSH_AUTH_SOCK: agent }, stdio: 'ignore' });
    return { agent, bastionEnv: { TARGET: `localhost:${inner.port}`, KNOWN_HOSTS: knownHosts, SSH_AUTH_SOCK: '',
      RECORDINGS_DIR: join(dir, 'recordings'), RECORDINGS_PORT: '0' } };
  })();
  return bastionSetUp;
}

/** A logged-in client of the bastion's, by the bench's key, whose sessions forward the agent. */
async function bastionUser(port: number, username: string, localAddress = '127.0.0.1'): Promise<ssh2.Client> {
  const { agent } = await bastionWithInner();
  const client = await connect({ port, localAddress, username, privateKey: userKey, agent, agentForward: true });
  client.on('error', () => {});
  return client;
}

/** `command` on `client`, given no input; resolves with its exit status, once the channel has closed. */
function exitStatus(client: ssh2.Client, command: string): Promise<number | undefined> {
  return new Promise((resolve) => client.exec(command, (err, channel) => {
    if (err) return resolve(undefined);
    let status: number | undefined;
    channel.on('exit', (code: number) => (status = code)).on('close', () => resolve(status)).resume().end();
    channel.stderr.resume();
  }));
}

/**
 * 2000 variables of 30 kB each (60 MB), sent as `env` requests in a session of `client`'s own, the last with a reply
 * asked for; resolves once it comes. Sent four at a time, so that the bench's own logins go on meanwhile.
 */
async function envFlood(client: ssh2.Client): Promise<void> {
  const id = await rawSession(client, 2 ** 20);
  const handlers = handlersOf(client);
  const answered = new Promise<void>((resolve) => {
    for (const name of ['CHANNEL_SUCCESS', 'CHANNEL_FAILURE']) {
      const original = handlers[name]!;
      handlers[name] = (protocol, recipient) => (recipient === 1000 ? resolve() : original(protocol, recipient));
    }
  });
  const value = 'x'.repeat(30_000);
  for (let i = 0; i < 2000; i++) {
    raw(client).env(id, `LC_${i}`, value, i === 1999);
    if (i % 4 === 3) await new Promise(setImmediate);
  }
  await answered;
}

/** alice's login to the bastion from another address, and a command run through it on the inner server. */
async function bastionCommand(port: number): Promise<void> {
  const client = await bastionUser(port, 'alice', '127.0.0.2');
  const status = await new Promise<number>((resolve, reject) => client.exec('true', (err, channel) =>
    (err ? reject(err) : channel.on('exit', resolve).resume())));
  await close(client);
  if (status !== 0) throw new Error(`status ${status}`); // a failed login: "cannot reach", or refused
}

/**
 * A store for step 21 of its own (valkey-server, else redis-server), started once: its process, and the step's
 * settings to share it. Undefined when neither is installed.
 */
let storeSetUp: Promise<{ store: ChildProcess; storeEnv: Record<string, string> } | undefined> | undefined;
function fleetStore() {
  storeSetUp ??= (async () => {
    const binary = ['valkey-server', 'redis-server'].map((name) =>
      spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()).find(Boolean);
    if (!binary) return undefined;
    const port = await freePort();
    const store = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    started.push(store);
    // alice logs in more often than CHAT_RATE lets anyone join the room: the bench's logins are not an attack.
    return { store, storeEnv: { STORE_URL: `redis://127.0.0.1:${port}`, MACHINE: 'a', CHAT_RATE: '1000000' } };
  })();
  return storeSetUp;
}

/** alice's login to the chat room from another address, until its welcome has come (it asks the store who is here). */
async function chatWelcome(port: number): Promise<void> {
  const client = await connect({ port, localAddress: '127.0.0.2', ...alice.password });
  await new Promise<void>((resolve, reject) => client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, channel) => {
    if (err) return reject(err);
    let tail = '';
    channel.on('data', (chunk: Buffer) => {
      tail = `${tail}${chunk}`.slice(-200);
      if (/Welcome, alice, on a\. \d+ here/.test(tail)) resolve();
    }).on('close', () => reject(new Error(`no welcome: ${tail}`)));
  }));
  await close(client);
}

export type UnderAttack = Awaited<ReturnType<typeof underAttack>>;

/**
 * Runs every attack (with --attacks, those whose row names --only's text; without, all of them if there is no --only)
 * into `results.underAttack`; resolves with their figures.
 */
export async function measureUnderAttack(args: Args, results: Record<string, any>): Promise<Record<string, UnderAttack>> {
  /** Step 16's users: alice and bob hold the bench's key, and bob a one-time code secret. */
  const totpDir = join(dir, 'totp');
  mkdirSync(totpDir);
  writeFileSync(join(totpDir, 'bob'), `${toBase32(randomBytes(20))}\n`);
  writeFileSync(join(keysDir, 'bob'), userPublicKey);
  /**
   * A login to step 16 as far as its first factor: alice's key, taken with partial success (ssh2 then says it has no
   * method left). No code is sent, so nobody's codes are counted.
   */
  const firstFactor = (port: number) => new Promise<void>((resolve, reject) => {
    const client = new ssh2.Client();
    client.on('ready', () => reject(new Error('in without a code')));
    client.on('error', (err) => (err.message === 'All configured authentication methods failed' ? resolve() : reject(err)));
    client.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2', ...alice.key, authHandler: ['publickey'] });
  });
  const attacks: [string, string, (port: number) => Promise<unknown>,
    (Record<string, string> | (() => Promise<Record<string, string>>))?, ((port: number) => Promise<void>)?][] = [
    ['none, for 5 s (for comparison)', '03-trivial-channel.ts', () => sleep(5000)],
    ['1 GiB offered to the echo, never reading, until 5 s without progress', '05-accepting-input.ts', async (port) => {
      const client = await attacker(port);
      await sendWithoutReading(await shell(client), GiB, 5000);
      client.destroy();
    }],
    ['1 GiB offered to cat, never reading, until 5 s without progress', '08-exec-requests.ts', async (port) => {
      const client = await attacker(port);
      await sendWithoutReading(await exec(client, 'cat'), GiB, 5000);
      client.destroy();
    }],
    ['1 GiB sent to cat past the window, until cut off', '08-exec-requests.ts', async (port) => {
      const client = await attacker(port);
      await flood(client, await exec(client, 'cat'), GiB);
      client.destroy();
    }],
    ['a 4294967295-square pty and 3000 window-changes, never read', '10-window-change.ts', async (port) => {
      const client = await attacker(port);
      await ptyStorm(client, 3000);
      client.destroy();
    }],
    ['20 slot holders from one address, for 5 s', '03-trivial-channel.ts', async (port) => {
      const holders = Array.from({ length: 20 }, () => slotHolder(port, '127.0.0.1'));
      await sleep(5000);
      for (const holder of holders) holder.socket.destroy();
    }],
    ['2000 tcpip-forward requests in one burst, 20 times over (MAX_REMOTE_FORWARDS 10)', '11-port-forwarding.ts', async (port) => {
      for (let i = 0; i < 20; i++) {
        const client = await attacker(port);
        await remoteForwardBurst(client, 2000);
        client.destroy();
      }
    }],
    ['ports out of range in tcpip-forward and direct-tcpip, 2000 of each', '11-port-forwarding.ts', async (port) => {
      const client = await attacker(port);
      const answered = (send: (done: () => void) => void) => new Promise<void>((resolve) => send(resolve));
      for (let i = 0; i < 2000; i++) {
        const number = 65536 + i * 1000;
        await Promise.all([answered((done) => client.forwardIn('127.0.0.1', number, done)),
          answered((done) => client.forwardOut('127.0.0.1', 1, '127.0.0.1', number, done))]);
      }
      client.destroy();
    }],
    ['SETSTAT and FSETSTAT with setuid, setgid and sticky bits, 2000 times', '12-sftp-server.ts', async (port) => {
      const client = await attacker(port);
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
      const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('setuid.bin', 'w', (err, h) => (err ? reject(err) : resolve(h))));
      for (let i = 0; i < 1000; i++) {
        await new Promise((resolve) => sftp.chmod('setuid.bin', 0o7777, resolve));
        await new Promise((resolve) => sftp.fchmod(handle, 0o6755, resolve));
      }
      client.destroy();
    }, { SFTP_HOME: join(dir, 'sftp-home') }],
    ['4 x 32 KiB of ESC, then ESC [ and 4 MiB of digits, 10 times, to the chat room', '13-chat-room.ts', async (port) => {
      const client = await attacker(port);
      const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, c) => (err ? reject(err) : resolve(c))));
      channel.resume();
      for (let i = 0; i < 10; i++) await escapeFlood(channel);
      client.destroy();
    }],
    ['1 MiB of ESC pasted into each of 10 sessions on each of 3 connections, until each has taken it', '18-ink-app.ts', async (port) => {
      const clients = await Promise.all([0, 1, 2].map(() => attacker(port)));
      const channels = await Promise.all(clients.flatMap((client) => Array.from({ length: 10 }, () => new Promise<ssh2.ClientChannel>(
        (resolve, reject) => client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, c) => (err ? reject(err) : resolve(c)))))));
      // Then Enter: the page it opens says the session has taken every ESC before it.
      await Promise.all(channels.map((channel) => new Promise<void>((resolve) => {
        let tail = '';
        channel.on('data', (chunk: Buffer) => {
          tail = `${tail}${chunk}`;
          if (tail.includes('Your note:')) resolve();
          tail = tail.slice(-16); // a chunk may end mid-word
        });
        channel.write(Buffer.alloc(1024 * 1024, 0x1b));
        channel.write('\r');
      })));
      for (const client of clients) client.destroy();
    }],
    ['4 MiB of ESC sent to each of 10 sessions on each of 10 connections of one user, for 10 s', '18-ink-app.ts', async (port) => {
      const clients: ssh2.Client[] = [];
      for (let i = 0; i < 10; i++) clients.push(await attacker(port)); // PER_SOURCE_MAX_STARTUPS: 5 logging in at once
      const channels = await Promise.all(clients.flatMap((client) => Array.from({ length: 10 }, () => new Promise<ssh2.ClientChannel>(
        (resolve, reject) => client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, c) => (err ? reject(err) : resolve(c)))))));
      const flood = Buffer.alloc(4 * 1024 * 1024, 0x1b);
      for (const channel of channels) channel.resume().write(flood);
      await sleep(10_000);
      for (const client of clients) client.destroy();
    }],
    ['Down pressed every 10 ms in each of 100 sessions of bob\'s at 400x200, for 10 s; alice\'s key presses', '18-ink-app.ts',
      async (port) => {
        const channels = await bobsHundredSessions(port, 400, 200);
        const pressing = setInterval(() => channels.forEach((channel) => channel.write('\x1b[B')), 10);
        await sleep(10_000);
        clearInterval(pressing);
        for (const channel of channels) channel.close();
      }, {}, aliceTyping()],
    ['window-changes every 10 ms in each of 100 sessions of bob\'s, for 10 s; alice\'s logins to her first screen', '18-ink-app.ts',
      async (port) => {
        const channels = await bobsHundredSessions(port, 80, 24);
        let i = 0;
        const storming = setInterval(() => channels.forEach((channel) => channel.setWindow(30 + (++i % 9), 60 + (i % 20), 0, 0)), 10);
        await sleep(10_000);
        clearInterval(storming);
        for (const channel of channels) channel.close();
      }, {}, async (port) => {
        const client = await connect({ port, localAddress: '127.0.0.2', ...alice.password });
        const channel = await drawnApp(client, 80, 24);
        channel.close();
        await close(client);
      }],
    ['none, for 5 s (for comparison); alice\'s commands through it', '20-bastion.ts', () => sleep(5000),
      async () => (await bastionWithInner()).bastionEnv, bastionCommand],
    ['bob\'s sessions, twenty at a time, each closed as the bastion logs him in onward, for 10 s; alice\'s commands through it',
      '20-bastion.ts', async (port) => {
        const bobs = [await bastionUser(port, 'bob'), await bastionUser(port, 'bob')];
        const until = performance.now() + 10_000;
        while (performance.now() < until) {
          await Promise.all(bobs.flatMap((bob) => Array.from({ length: 10 }, () => new Promise<void>((resolve) => bob.exec('sleep 30', (err, channel) => {
            if (err) return resolve();
            channel.on('close', () => resolve()).resume();
            setTimeout(() => channel.close(), 5 + Math.random() * 30); // while the bastion logs him in onward
          })))));
        }
        for (const bob of bobs) bob.end();
      }, async () => (await bastionWithInner()).bastionEnv, bastionCommand],
    ['2000 env requests of 30 kB in a session of each of 5 connections', '14-real-shell.ts', async (port) => {
      const clients = await Promise.all(Array.from({ length: 5 }, async () => (await connect({ port, ...alice.key })).on('error', () => {})));
      await Promise.all(clients.map(envFlood)); // this step takes keys alone
      for (const client of clients) client.destroy();
    }, { SHELL: '/bin/sh' }, async (port) => close(await connect({ port, localAddress: '127.0.0.2', ...alice.key }))],
    ['bob\'s commands of 17 KiB, each sending 1 MB of NUL bytes, four at a time for 10 s (all recorded); alice\'s commands through it',
      '20-bastion.ts', async (port) => {
        const bobs = [await bastionUser(port, 'bob'), await bastionUser(port, 'bob')];
        const command = `: ${'x'.repeat(17 * 1024)}; head -c 1000000 /dev/zero`;
        const until = performance.now() + 10_000;
        await Promise.all(bobs.flatMap((bob) => [0, 1].map(async () => {
          while (performance.now() < until) await exitStatus(bob, command);
        })));
        for (const bob of bobs) bob.end();
      }, async () => (await bastionWithInner()).bastionEnv, bastionCommand],
    ['bob\'s commands of 17 KiB, each sending 1 MB of NUL bytes, each a login of OpenSSH\'s ssh -A, four at a time for 10 s (all recorded); alice\'s commands through it',
      '20-bastion.ts', async (port) => {
        // Four loops of OpenSSH's client, in processes of their own: what they read costs the bench's event loop nothing.
        const { agent } = await bastionWithInner();
        const command = `: ${'x'.repeat(17 * 1024)}; head -c 1000000 /dev/zero`;
        const ssh = ['ssh', '-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'LogLevel=ERROR',
          '-o', 'IdentitiesOnly=yes', '-i', join(dir, 'id_ed25519'), '-A', '-p', String(port), 'bob@127.0.0.1'].map((word) => `'${word}'`).join(' ');
        const loop = `end=$(( $(date +%s) + 10 )); while [ $(date +%s) -lt $end ]; do ${ssh} "$COMMAND" > /dev/null; done`;
        await Promise.all(Array.from({ length: 4 }, () => new Promise((resolve) => spawn('sh', ['-c', loop], {
          env: { ...process.env, SSH_AUTH_SOCK: agent, COMMAND: command }, stdio: 'ignore' }).once('close', resolve))));
      }, async () => (await bastionWithInner()).bastionEnv, bastionCommand],
    ['2000 env requests of 30 kB in a session of each of 5 connections to the bastion; alice\'s commands through it',
      '20-bastion.ts', async (port) => {
        const bobs: ssh2.Client[] = [];
        for (let i = 0; i < 5; i++) bobs.push(await bastionUser(port, 'bob'));
        await Promise.all(bobs.map(envFlood));
        for (const bob of bobs) bob.end();
      }, async () => (await bastionWithInner()).bastionEnv, bastionCommand],
    ['the store stopped (SIGSTOP) for 5 s, then going on (SIGCONT); alice\'s logins to her welcome', '21-fleet.ts', async () => {
      const { store } = (await fleetStore())!;
      await sleep(1000); // logins with the store answering first
      store.kill('SIGSTOP');
      await sleep(5000);
      store.kill('SIGCONT');
      await sleep(3000); // and again once it answers
    }, async () => (await fleetStore())?.storeEnv ?? {}, chatWelcome],
    ['bare git-receive-pack requests of bob\'s to 500 new repositories (GIT_MAX_REPOS 100), then 100 held at once', '19-git-server.ts', async (port) => {
      const bobs: ssh2.Client[] = [];
      for (let i = 0; i < 10; i++) bobs.push((await connect({ port, username: 'bob', privateKey: userKey })).on('error', () => {}));
      for (let i = 0; i < 500; i++) await exitStatus(bobs[i % 10]!, `git-receive-pack 'bob/r${i}.git'`);
      const held = await Promise.all(bobs.flatMap((bob) => Array.from({ length: 10 }, (unused, i) =>
        new Promise<ssh2.ClientChannel | undefined>((resolve) => bob.exec(`git-receive-pack 'bob/r${i}.git'`, (err, channel) =>
          resolve(err ? undefined : channel.resume()))))));
      await sleep(2000); // while they are held
      for (const channel of held) channel?.end();
      for (const bob of bobs) bob.end();
    }, { GIT_REPOS_DIR: join(dir, 'git-attacked') }],
    ['15 wrong codes for one user from four addresses (its codes locked after 10)', '16-two-factors.ts', async (port) => {
      for (let i = 0; i < 15; i++) {
        await new Promise<void>((resolve) => {
          const client = new ssh2.Client();
          client.on('ready', () => client.end()).on('error', () => resolve()).on('close', () => resolve());
          client.on('keyboard-interactive', (name, instructions, lang, prompts, finish) => finish(['000000']));
          client.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${3 + (i % 4)}`, username: 'bob',
            privateKey: userKey, tryKeyboard: true, authHandler: ['publickey', 'keyboard-interactive'] });
        });
      }
    }, { TOTP_DIR: totpDir }, firstFactor],
  ];
  const underAttacks: Record<string, UnderAttack> = {};
  results.underAttack = underAttacks;
  for (const [name, file, attack, stepEnv, login] of attacks.filter(([name, file]) => (args.attacks
    ? (args.only ?? '').split('|').some((text) => `step ${file.slice(0, 2)}: ${name}`.includes(text)) : !args.only))) {
    if (file === '21-fleet.ts' && !(await fleetStore())) {
      progress('step 21 left out: it needs valkey-server or redis-server (Debian: apt-get install -y valkey-server)');
      continue;
    }
    progress(`under attack: ${file}, ${name}`);
    underAttacks[`${file.slice(0, 2)}: ${name}`] = await underAttack(file, attack, typeof stepEnv === 'function' ? await stepEnv() : stepEnv, login);
  }
  return underAttacks;
}
