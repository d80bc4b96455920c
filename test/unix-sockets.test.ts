// Step 23, Unix-domain sockets forwarded both ways: driven by OpenSSH's ssh -L and -R, curl and socket servers of the
// test's own, then attacked through ssh2's client.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, get, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { peakDuring, residentMiB } from './hostile.ts';
import { count, freePort, guarded, hashingApp, logged, run, runStep, sshEnv, sshOptions, temporaryDir, useStep, waitFor } from './helpers.ts';

const BODY = randomBytes(20 * 1024 * 1024);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The reader's web server, on a loopback port: `/big` is 20 MiB of random bytes, anything else "hello". */
let web: HttpServer;
let webPort: number;
before(async () => {
  web = createHttpServer((request, response) => response.end(request.url === '/big' ? BODY : 'hello\n'));
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  webPort = (web.address() as AddressInfo).port;
});
after(() => web.close());

/** An echo server on a Unix-domain socket at `path` (an app of the server's side, as `ssh -L PORT:PATH` reaches). */
async function echoServer(path: string): Promise<Server> {
  const server = createServer((socket) => socket.on('error', () => {}).pipe(socket));
  server.listen(path);
  await once(server, 'listening');
  return server;
}

/** OpenSSH's ssh -N with ARGS, as USER, running until `stop()`; what it printed on stderr so far, and its exit. */
function forwardingSsh(port: number, args: string[], user = 'alice') {
  const child: ChildProcess = guarded(spawn('ssh', [...sshOptions, '-N', '-p', String(port), ...args, `${user}@localhost`], {
    env: { ...process.env, ...sshEnv(user === 'alice' ? 'wonderland' : 'builder') },
    stdio: ['ignore', 'ignore', 'pipe'],
  }));
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit');
  return { stderr: () => stderr, exited, stop: async () => (child.kill(), await exited) };
}

/** Whether a Unix-domain socket is at `path`. */
const isSocket = (path: string) => lstatSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;

/** Whether something accepts connections on a loopback port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Waits until ssh -L listens on a loopback port; fails after 20 s. */
async function listening(port: number): Promise<void> {
  for (const deadline = Date.now() + 20_000; !(await accepts(port));) {
    assert.ok(Date.now() < deadline, `nothing listened on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the interval of the poll, under its deadline
  }
}

/** GET PATH from a web server at a loopback port or a socket; resolves with the body. */
function fetchBody(at: number | string, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const where = typeof at === 'number' ? { host: '127.0.0.1', port: at } : { socketPath: at };
    get({ ...where, path, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks)));
      response.on('error', reject);
    }).on('error', reject);
  });
}

/** Sends `data` through a loopback port and resolves with all that comes back once the other side ends. */
function echoed(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.end(data));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

/** Logs in with ssh2's client, by password; it asks for OpenSSH's socket forwarding of a server that is not OpenSSH. */
async function login(port: number, username = 'alice', password = 'wonderland'): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).on('error', reject); // later errors too: a reset after the end
    client.connect({ host: '127.0.0.1', port, username, password, strictVendor: false });
  });
  return client;
}

/** Asks for `ssh -R PATH:...` with ssh2's client; resolves once granted, or rejects (and at 10 s with no answer). */
function forwardIn(client: ssh2.Client, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer for ${JSON.stringify(path.slice(0, 20))}`)), 10_000);
    client.openssh_forwardInStreamLocal(path, (err) => (clearTimeout(timer), err ? reject(err) : resolve()));
  });
}

/** Opens a channel to the socket at PATH on the server's side (what ssh -L PORT:PATH does); resolves or rejects. */
function forwardOut(client: ssh2.Client, path: string): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer for ${JSON.stringify(path.slice(0, 20))}`)), 10_000);
    client.openssh_forwardOutStreamLocal(path, (err, channel) => (clearTimeout(timer), err ? reject(err) : resolve(channel)));
  });
}

/** The step's users' socket folders, and an app's socket that FORWARD_TO_SOCKETS names, apart for each describe. */
function useSocketStep(env: Record<string, string> = {}) {
  const dir = temporaryDir();
  const sockets = join(dir, 'sockets');
  const app = join(dir, 'app.sock');
  const step = useStep('23-unix-sockets.ts', { env: { SOCKETS_DIR: sockets, FORWARD_TO_SOCKETS: app, ...env } });
  return { dir, sockets, app, step };
}

describe('step 23: Unix-domain sockets with OpenSSH', { timeout: 120_000 }, () => {
  const { dir, sockets, app, step } = useSocketStep();
  let echo: Server;
  before(async () => (echo = await echoServer(app)));
  after(() => echo.close());

  test('ssh -R ./web.sock: a socket of mode 0600 in alice\'s folder (0700) serves her web server; gone with ssh', async () => {
    const path = join(sockets, 'alice', 'web.sock');
    const client = forwardingSsh(step().port, ['-o', 'ExitOnForwardFailure=yes', '-R', `./web.sock:localhost:${webPort}`]);
    try {
      await waitFor('the socket', () => isSocket(path) || undefined);
      assert.equal((statSync(path).mode & 0o777).toString(8), '600');
      assert.equal((statSync(join(sockets, 'alice')).mode & 0o777).toString(8), '700');
      assert.equal((statSync(sockets).mode & 0o777).toString(8), '700');
      const body = await fetchBody(path, '/big');
      assert.equal(body.length, BODY.length);
      assert.equal(sha256(body), sha256(BODY));
      // And curl, as the lesson has it.
      assert.deepEqual(await run('curl', ['-sS', '--unix-socket', path, 'http://localhost/']), { stdout: 'hello\n', stderr: '', status: 0 });
    } finally {
      await client.stop();
    }
    await waitFor('the socket to be removed', () => !existsSync(path) || undefined);
  });

  test('ssh -L PORT:PATH reaches an app\'s socket that FORWARD_TO_SOCKETS names: 20 MiB echoed byte for byte', async () => {
    const local = await freePort();
    const client = forwardingSsh(step().port, ['-L', `${local}:${app}`]);
    try {
      await listening(local);
      const back = await echoed(local, BODY);
      assert.equal(back.length, BODY.length);
      assert.equal(sha256(back), sha256(BODY));
    } finally {
      await client.stop();
    }
  });

  test('alice reaches her own ssh -R socket with ssh -L PORT:./web.sock; bob is refused it, and his is his own', async () => {
    const alicePath = join(sockets, 'alice', 'web.sock');
    const [aliceLocal, bobLocal] = [await freePort(), await freePort()];
    const clients = [
      forwardingSsh(step().port, ['-o', 'ExitOnForwardFailure=yes', '-R', `./web.sock:localhost:${webPort}`]),
      forwardingSsh(step().port, ['-L', `${aliceLocal}:./web.sock`]),
      forwardingSsh(step().port, ['-L', `${bobLocal}:${alicePath}`], 'bob'),
      forwardingSsh(step().port, ['-o', 'ExitOnForwardFailure=yes', '-R', `./web.sock:localhost:${webPort}`], 'bob'),
    ];
    try {
      await waitFor('both sockets', () => (isSocket(alicePath) && isSocket(join(sockets, 'bob', 'web.sock'))) || undefined);
      for (const local of [aliceLocal, bobLocal]) await listening(local);
      assert.equal(String(await fetchBody(aliceLocal, '/')), 'hello\n');
      await assert.rejects(fetchBody(bobLocal, '/'));
      await waitFor('the refusal', () => /open failed/.test(clients[2]!.stderr()) || undefined);
      assert.match(clients[2]!.stderr(), new RegExp(`channel \\d+: open failed: administratively prohibited: ${alicePath} `
        + 'is not a socket this server forwards to'));
      assert.equal(count(step(), new RegExp(`refused to forward to ${alicePath}: not bob's, nor in FORWARD_TO_SOCKETS$`, 'gm')), 1);
    } finally {
      for (const client of clients) await client.stop();
    }
  });

  test('ssh -R ./half.sock: a connection that sends its request and its end still gets the whole answer after it', async () => {
    const hashing = await hashingApp(); // an app of alice's
    const path = join(sockets, 'alice', 'half.sock');
    const client = forwardingSsh(step().port, ['-R', `./half.sock:localhost:${hashing.port}`]);
    try {
      await waitFor('the socket', () => isSocket(path) || undefined);
      await hashing.ask({ path });
    } finally {
      await client.stop();
      hashing.close();
    }
  });

  test('ssh -R to a path outside the user\'s folder: ssh says it failed, and nothing is made there', async () => {
    const outside = join(dir, 'outside.sock');
    const client = forwardingSsh(step().port, ['-o', 'ExitOnForwardFailure=yes', '-R', `${outside}:localhost:${webPort}`]);
    const [status] = await client.exited;
    assert.equal(status, 255);
    assert.match(client.stderr(), new RegExp(`remote port forwarding failed for listen path ${outside}`));
    assert.equal(existsSync(outside), false);
    await logged(step(), new RegExp(`refused streamlocal-forward@openssh.com of ${outside}: a socket must be a name`));
  });
});

describe('step 23 attacked', { timeout: 120_000 }, () => {
  const { dir, sockets, app, step } = useSocketStep({ MAX_REMOTE_FORWARDS: '3', MAX_FORWARDS: '20', MAX_FORWARDS_PER_USER: '30' });
  let echo: Server;
  before(async () => (echo = await echoServer(app)));
  after(() => echo.close());

  test('paths that leave the folder, hide, hold a NUL byte or are too long are refused, and make nothing', async () => {
    const client = await login(step().port);
    try {
      const paths = ['../bob/x.sock', '/etc/x.sock', `${sockets}/alice/../bob/x.sock`, 'a\0b.sock', '.hidden', 'sub/x.sock',
        '', '.', '..', `${'x'.repeat(60)}.sock`, join(dir, 'x.sock'), 'x'.repeat(1000)];
      for (const path of paths) await assert.rejects(forwardIn(client, path), JSON.stringify(path.slice(0, 40)));
      assert.deepEqual(readdirSync(sockets), ['alice']);
      assert.deepEqual(readdirSync(join(sockets, 'alice')), []);
      assert.deepEqual(readdirSync(dir).sort(), ['app.sock', 'sockets']);
      for (const path of ['/etc/passwd', `${sockets}/bob/x.sock`, 'a\0b', `${app}\0`, '../bob/x.sock', 'nothing-here.sock']) {
        await assert.rejects(forwardOut(client, path), JSON.stringify(path));
      }
      // And it serves on.
      await forwardIn(client, 'after.sock');
      assert.ok(isSocket(join(sockets, 'alice', 'after.sock')));
    } finally {
      client.end();
    }
  });

  test('MAX_REMOTE_FORWARDS sockets of 20 asked at once; tcpip-forward refused; a cancel removes one and frees its place', async () => {
    const client = await login(step().port);
    try {
      const asked = await Promise.allSettled(Array.from({ length: 20 }, (unused, i) => forwardIn(client, `s${i}.sock`)));
      const granted = asked.flatMap((result, i) => (result.status === 'fulfilled' ? [`s${i}.sock`] : []));
      assert.equal(granted.length, 3, `${granted.length} of 20 granted`);
      assert.deepEqual(readdirSync(join(sockets, 'alice')).sort(), [...granted].sort());
      await assert.rejects(new Promise<void>((resolve, reject) => client.forwardIn('127.0.0.1', 0, (err) => (err ? reject(err) : resolve()))));
      await new Promise<void>((resolve, reject) => client.openssh_unforwardInStreamLocal(granted[0]!, (err) => (err ? reject(err) : resolve())));
      assert.equal(isSocket(join(sockets, 'alice', granted[0]!)), false);
      await forwardIn(client, 'again.sock');
      await assert.rejects(forwardIn(client, 'one-too-many.sock'));
    } finally {
      client.end();
    }
    await waitFor('every socket to be removed', () => readdirSync(join(sockets, 'alice')).length === 0 || undefined);
  });

  test('a socket left by a killed step is replaced; one in use, or a file that is not a socket, is refused and kept', async () => {
    const folder = join(sockets, 'alice');
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    // A socket that nothing listens on any more: what a step killed with SIGKILL leaves behind.
    const made = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(folder, 'stale.sock')]);
    assert.equal(made.status, 0, String(made.stderr));
    assert.ok(isSocket(join(folder, 'stale.sock')));
    writeFileSync(join(folder, 'file.sock'), 'keep me');
    const [first, second] = [await login(step().port), await login(step().port)];
    try {
      await forwardIn(first, 'stale.sock');
      await assert.rejects(forwardIn(first, 'file.sock'));
      assert.equal(readFileSync(join(folder, 'file.sock'), 'utf8'), 'keep me');
      await assert.rejects(forwardIn(second, 'stale.sock'), 'in use by the first connection');
      // The first one's forward still serves: a connection to it is a channel back to the first client.
      const opened = new Promise<string>((resolve) => first.once('unix connection', (info, accept) => {
        accept().end();
        resolve(info.socketPath);
      }));
      const local = connect(join(folder, 'stale.sock')).on('error', () => {});
      assert.equal(await opened, 'stale.sock');
      local.destroy();
    } finally {
      first.end();
      second.end();
    }
  });

  test('60 channels to a socket asked at once: MAX_FORWARDS open, the rest refused; closed ones free their places', async () => {
    const client = await login(step().port);
    try {
      const asked = await Promise.allSettled(Array.from({ length: 60 }, () => forwardOut(client, app)));
      const open = asked.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      assert.equal(open.length, 20, `${open.length} of 60 open`);
      await logged(step(), /refused a forwarded connection to a socket: 20 are open on this connection \(MAX_FORWARDS\)$/m);
      await Promise.all(open.map((channel) => new Promise((resolve) => channel.once('close', resolve).resume().close())));
      assert.equal((await Promise.allSettled(Array.from({ length: 20 }, () => forwardOut(client, app))))
        .filter((result) => result.status === 'fulfilled').length, 20);
    } finally {
      client.end();
    }
  });

  test('a user\'s channels over all their connections: MAX_FORWARDS_PER_USER (30), while another user has his own', async () => {
    const [one, two, bob] = [await login(step().port), await login(step().port), await login(step().port, 'bob', 'builder')];
    const openOn = async (client: ssh2.Client, count: number) => (await Promise.allSettled(Array.from({ length: count },
      () => forwardOut(client, app)))).flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    try {
      const first = await openOn(one, 20);
      assert.equal(first.length, 20);
      assert.equal((await openOn(two, 20)).length, 10, 'the second connection: what is left of the 30');
      await logged(step(), /refused a forwarded connection to a socket: alice has 30 open over all their connections \(MAX_FORWARDS_PER_USER\)$/m);
      assert.equal((await openOn(bob, 20)).length, 20, 'bob\'s are his own');
      // Closed ones give their places back, to any connection of the user's.
      await Promise.all(first.map((channel) => new Promise((resolve) => channel.once('close', resolve).resume().close())));
      assert.equal((await openOn(two, 20)).length, 10, 'the second connection: up to its own 20');
    } finally {
      for (const client of [one, two, bob]) client.end();
    }
  });

  test('one ssh -L PORT:PATH serves more connections, one after another, than MAX_FORWARDS', async () => {
    // alice's web server behind a socket of hers, and a port of hers to it: each request a channel both ways, which
    // the web server closes first, as it answers (no agent: a connection each).
    const local = await freePort();
    const clients = [forwardingSsh(step().port, ['-o', 'ExitOnForwardFailure=yes', '-R', `./web.sock:localhost:${webPort}`]),
      forwardingSsh(step().port, ['-L', `${local}:./web.sock`])];
    try {
      await waitFor('the socket', () => isSocket(join(sockets, 'alice', 'web.sock')) || undefined);
      await listening(local);
      for (let i = 0; i < 60; i++) assert.equal(String(await fetchBody(local, '/')), 'hello\n', `request ${i + 1}`);
    } finally {
      for (const client of clients) await client.stop();
    }
  });

  test('one stale path asked for twice at once, on one connection and on two: granted once', async () => {
    const folder = join(sockets, 'alice');
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const [first, second] = [await login(step().port), await login(step().port)];
    try {
      for (const [name, clients] of [['once.sock', [first, first]], ['twice.sock', [first, second]]] as const) {
        const made = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(folder, name)]);
        assert.equal(made.status, 0, String(made.stderr));
        const asked = await Promise.allSettled(clients.map((client) => forwardIn(client, name)));
        assert.equal(asked.filter((result) => result.status === 'fulfilled').length, 1, name);
        // The one granted serves at that path: a connection to it comes back as a channel.
        const winner = clients[asked.findIndex((result) => result.status === 'fulfilled')]!;
        const opened = new Promise<void>((resolve) => winner.once('unix connection', (info, accept) => (accept().end(), resolve())));
        const local = connect(join(folder, name)).on('error', () => {});
        await opened;
        local.destroy();
      }
    } finally {
      first.end();
      second.end();
    }
  });

  test('a live socket whose queue is full is not taken for a stale one: refused, and left in place', async () => {
    const path = join(sockets, 'alice', 'full.sock');
    mkdirSync(join(sockets, 'alice'), { recursive: true, mode: 0o700 });
    // A server that listens and never accepts, its queue filled by connections of its own: a connection to it now
    // fails with EAGAIN, not with the ECONNREFUSED of a socket nobody listens on.
    const full = guarded(spawn('python3', ['-c', [
      'import socket, sys, time',
      's = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(0)',
      'held = []',
      'while True:',
      '    c = socket.socket(socket.AF_UNIX); c.setblocking(False)',
      '    try: c.connect(sys.argv[1]); held.append(c)',
      '    except BlockingIOError: break',
      'print("full", flush=True); time.sleep(60)',
    ].join('\n'), path], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let said = '';
    full.stdout!.on('data', (chunk) => (said += chunk));
    const client = await login(step().port);
    try {
      await waitFor('the queue to fill', () => said.includes('full') || undefined);
      await assert.rejects(forwardIn(client, 'full.sock'));
      await logged(step(), /cannot listen on \S+full\.sock for ssh -R: cannot tell whether \S+ is in use \(EAGAIN\)$/m);
      assert.ok(isSocket(path), 'the live socket is still there');
    } finally {
      client.end();
      full.kill();
    }
  });

  test('the sockets of a connection that drops are removed', async () => {
    const client = await login(step().port);
    await forwardIn(client, 'dropped.sock');
    assert.ok(isSocket(join(sockets, 'alice', 'dropped.sock')));
    client.destroy();
    await waitFor('the socket to be removed', () => !existsSync(join(sockets, 'alice', 'dropped.sock')) || undefined);
  });

  test('a client that never reads its forwarded socket: 100 MiB written to it do not grow the step', async () => {
    const client = await login(step().port);
    try {
      client.on('unix connection', (info, accept) => accept().pause()); // and never read
      await forwardIn(client, 'sink.sock');
      const before = residentMiB(step().pid);
      const peak = await peakDuring(step().pid, async () => {
        const local = connect(join(sockets, 'alice', 'sink.sock')).on('error', () => {});
        let left = 100;
        const more = () => {
          while (left > 0) {
            left -= 1;
            if (!local.write(Buffer.alloc(1024 * 1024))) return void local.once('drain', more);
          }
        };
        more();
        // A wait, not a condition: time for the step to take in all 100 MiB, were it to read on (a loopback carries
        // that in well under a second); what is checked is that it does not.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        local.destroy();
      });
      assert.ok(peak - before < 40, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    } finally {
      client.end();
    }
  });
});

describe('step 23 starting', () => {
  test('a SOCKETS_DIR that others may enter is refused, with a clear line', async () => {
    const dir = join(temporaryDir(), 'open');
    mkdirSync(dir, { mode: 0o755 });
    const { stderr, status } = await runStep('23-unix-sockets.ts', [], { SOCKETS_DIR: dir });
    assert.equal(status, 1);
    assert.equal(stderr, `error: the folder ${dir} for the users' sockets must be this user's own, mode 0700 (set SOCKETS_DIR to use another)\n`);
  });
});
