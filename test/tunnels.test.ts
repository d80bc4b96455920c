// Step 22, a tunnel service: real OpenSSH clients bind names with ssh -R, real curl (and a WebSocket client) asks
// the step's HTTP front for them, and apps started here answer: each request must reach the right app, whole.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, get as httpGet, request as httpRequest, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, guarded, logged, root, run, ssh2Login, sshEnv, sshOptions, startStep, type Step, temporaryDir, Terminal, waitFor } from './helpers.ts';
import { peakDuring, residentMiB } from './hostile.ts';

const dir = temporaryDir();
const names = join(dir, 'tunnel-names');
const access = join(dir, 'tunnel-access');
const env = { TUNNELS_HTTP: '127.0.0.1:0', TUNNEL_NAMES: names, TUNNEL_ACCESS: access };

/** 50 MB that a download must bring back byte for byte: a counter's bytes, so that no two MiB are alike. */
const big = Buffer.alloc(50_000_000);
for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i / 4, i);
const bigHash = createHash('sha256').update(big).digest('hex');

/** An app on a free port of 127.0.0.1: it says who it is and what it was asked; /big is the 50 MB; WebSockets echo. */
async function app(tag: string): Promise<{ port: number; server: Server }> {
  const server = createServer((request, response) => {
    if (request.url === '/big') return void response.writeHead(200, { 'Content-Length': big.length }).end(big);
    const h = request.headers;
    response.end(`${tag} ${request.method} ${request.url} host=${h.host} for=${h['x-forwarded-for']} `
      + `proto=${h['x-forwarded-proto']} fhost=${h['x-forwarded-host']}\n`);
  });
  new WebSocketServer({ server }).on('connection', (socket) => socket.on('message', (data) => socket.send(`${tag} echoes ${data}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

/**
 * Step 22 with `stepEnv`, started before the tests of the enclosing describe and stopped after them, with the apps
 * and ssh processes they started: its `step` and front's port `http` are there once it has started.
 */
function useTunnels(stepEnv: Record<string, string>) {
  const state = { step: undefined as unknown as Step, http: 0, apps: [] as Server[], tunnels: [] as ChildProcess[] };
  before(async () => {
    state.step = await startStep('22-tunnels.ts', { env: stepEnv });
    state.http = Number((await logged(state.step, /^tunnels: http:\/\/NAME\.localhost:(\d+)\/$/m))[1]);
  });
  after(async () => {
    for (const each of state.tunnels) each.kill();
    for (const each of state.apps) each.close();
    await state.step?.stop();
    assert.doesNotMatch(state.step?.output() ?? '', /^internal error/m);
  });
  return state;
}

describe('step 22: tunnels', { timeout: 180_000 }, () => {
  const front = useTunnels(env);
  const { apps, tunnels } = front;
  let [step, http] = [front.step, 0]; // the step, and its front's port, once started
  before(() => ({ step, http } = front));
  const started = async (tag: string) => {
    const made = await app(tag);
    apps.push(made.server);
    return made.port;
  };
  /** `ssh -N -R SPEC` as `user`, which ends if the forward is refused; resolves once the step has bound `name`. */
  const tunnel = async (user: string, password: string, spec: string, name?: string) => {
    const from = step.output().length;
    const child = guarded(spawn('ssh', [...sshOptions, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', spec, '-p',
      String(step.port), `${user}@localhost`], { env: { ...process.env, ...sshEnv(password) }, stdio: ['ignore', 'pipe', 'pipe'] }));
    tunnels.push(child);
    if (name) await logged(step, new RegExp(` ${user} bound ${name} \\(`), from);
    return child;
  };
  const url = (name: string, path = '/') => `http://${name}.localhost:${http}${path}`;
  const curl = (...args: string[]) => run('curl', ['-sS', '--max-time', '60', ...args]);

  test('two users\' apps under two names, each answered by its own; X-Forwarded-*; the browser\'s connection kept alive', async () => {
    await tunnel('alice', 'wonderland', `alice-app:80:localhost:${await started('A')}`, 'alice-app');
    await tunnel('bob', 'builder', `bob-app:80:localhost:${await started('B')}`, 'bob-app');
    const fields = (name: string, path: string, tag: string) => `${tag} GET ${path} host=${name}.localhost:${http} for=127.0.0.1 `
      + `proto=http fhost=${name}.localhost:${http}\n`;
    // Two requests in one curl: the second on the first's connection (it makes no new one).
    const both = await curl('-w', 'connects=%{num_connects}\n', url('alice-app', '/one'), url('alice-app', '/two?x=1'));
    assert.equal(both.stdout, `${fields('alice-app', '/one', 'A')}connects=1\n${fields('alice-app', '/two?x=1', 'A')}connects=0\n`);
    assert.equal((await curl(url('bob-app', '/'))).stdout, fields('bob-app', '/', 'B'));
    // A POST's body goes through to the app as it came.
    assert.equal((await curl('-d', 'x=1', url('bob-app', '/form'))).stdout.split(' ').slice(0, 3).join(' '), 'B POST /form');
  });

  test('the session says where the app is, a generated name too; Ctrl-C ends ssh with status 0', async () => {
    const port = await started('C');
    for (const [spec, pattern] of [[`alice-web:80:localhost:${port}`, /^Your app is at (http:\/\/alice-web\.localhost:\d+\/)$/],
      [`80:localhost:${port}`, /^Your app is at (http:\/\/[a-z][0-9a-f]{7}\.localhost:\d+\/)$/]] as const) {
      const terminal = new Terminal(['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', '-R', spec, '-p', String(step.port), 'alice@localhost'],
        sshEnv('wonderland'));
      try {
        const address = await waitFor('the address', () => terminal.screen().map((row) => pattern.exec(row)?.[1]).find(Boolean));
        assert.equal(address.endsWith(`:${http}/`), true);
        assert.match((await curl(`${address}page`)).stdout, /^C GET \/page /);
        terminal.sendKeys('C-c');
        assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 0);
      } finally {
        terminal.close();
      }
    }
  });

  test('a name is its first owner\'s, across a restart: bob is refused alice\'s; a name unbound answers 502, an unknown 404', async () => {
    await tunnel('alice', 'wonderland', `alice-owned:80:localhost:${await started('D')}`, 'alice-owned');
    const from = step.output().length;
    const refused = await run('ssh', [...sshOptions, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', 'alice-owned:80:localhost:9',
      '-p', String(step.port), 'bob@localhost'], sshEnv('builder'));
    assert.equal(refused.status, 255);
    assert.match(refused.stderr, /^Error: remote port forwarding failed for listen port 80$/m);
    // While alice's tunnel is there, the name is hers as it is in use; and it is hers in the names file.
    await logged(step, / refused tcpip-forward of "alice-owned":80: the name alice-owned is in use by another user$/m, from);
    assert.match(readFileSync(names, 'utf8'), /^alice-owned alice$/m);
    // Another step with the same names file: the name is still alice's.
    const again = await startStep('22-tunnels.ts', { env });
    try {
      const twice = await run('ssh', [...sshOptions, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', 'alice-owned:80:localhost:9',
        '-p', String(again.port), 'bob@localhost'], sshEnv('builder'));
      assert.equal(twice.status, 255);
      await logged(again, / refused tcpip-forward of "alice-owned":80: the name alice-owned belongs to another user$/m);
      const port = Number((await logged(again, /^tunnels: http:\/\/NAME\.localhost:(\d+)\/$/m))[1]);
      const gone = await curl('-i', `http://alice-owned.localhost:${port}/`);
      assert.match(gone.stdout, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
      assert.match(gone.stdout, /\r\n\r\n502: the tunnel cannot be reached now\n$/);
      const unknown = await curl('-i', `http://nobody-here.localhost:${port}/`);
      assert.match(unknown.stdout, /^HTTP\/1\.1 404 Not Found\r\n[^]*\r\n\r\n404: no tunnel is named nobody-here\n$/);
    } finally {
      await again.stop();
    }
  });

  test('two tunnels of one name are taken in turn', async () => {
    await tunnel('alice', 'wonderland', `alice-rr:80:localhost:${await started('E1')}`, 'alice-rr');
    await tunnel('alice', 'wonderland', `alice-rr:80:localhost:${await started('E2')}`, 'alice-rr');
    const tags: string[] = [];
    for (let i = 0; i < 4; i++) tags.push((await curl(url('alice-rr'))).stdout.split(' ')[0]!);
    assert.ok(['E1,E2,E1,E2', 'E2,E1,E2,E1'].includes(tags.join(',')), tags.join(','));
  });

  test('a tunnel with a user and password: asked of every visitor (401), compared whole; kept out of the names file and the log', async () => {
    const port = await started('H');
    await tunnel('alice', 'wonderland', `[visitor:s3cret:x@alice-auth]:80:localhost:${port}`, 'alice-auth');
    const asked = await curl('-i', url('alice-auth'));
    assert.match(asked.stdout, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.match(asked.stdout, /^WWW-Authenticate: Basic realm="alice-auth", charset="UTF-8"\r$/m);
    assert.match(asked.stdout, /\r\n\r\n401: this tunnel wants a user and password\n$/);
    for (const wrong of ['visitor:s3cret', 'visitor:s3cret:', 'visitor:s3cret:xx', 'Visitor:s3cret:x', ':s3cret:x']) {
      assert.match((await curl('-i', '-u', wrong, url('alice-auth'))).stdout, /^HTTP\/1\.1 401 /, wrong);
    }
    assert.match((await curl('-u', 'visitor:s3cret:x', url('alice-auth', '/in'))).stdout, /^H GET \/in /);
    // A WebSocket without them is refused too.
    const socket = new WebSocket(`ws://127.0.0.1:${http}/`, { headers: { Host: `alice-auth.localhost:${http}` } });
    const status = await new Promise<number>((resolve) => socket.on('error', () => {}).once('unexpected-response', (request, response) => resolve(response.statusCode!)));
    assert.equal(status, 401);
    assert.doesNotMatch(readFileSync(names, 'utf8'), /s3cret/);
    assert.doesNotMatch(step.output(), /s3cret/);
  });

  test('a 50 MB download comes byte for byte; a WebSocket echoes through the tunnel', async () => {
    await tunnel('alice', 'wonderland', `alice-big:80:localhost:${await started('F')}`, 'alice-big');
    const file = join(dir, 'big');
    assert.equal((await curl('-o', file, url('alice-big', '/big'))).status, 0);
    assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), bigHash);
    const socket = new WebSocket(`ws://127.0.0.1:${http}/live`, { headers: { Host: `alice-big.localhost:${http}` } });
    socket.on('error', () => {});
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const echoed = new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))));
    socket.send('hello');
    assert.equal(await echoed, 'F echoes hello');
    socket.close();
  });

  test('a TCP alias (-R NAME:5432:...) is not on the web: its owner reaches it with ssh -W, bob only once TUNNEL_ACCESS lets him, with -W and -L', async () => {
    const db = createTcpServer((socket) => socket.on('error', () => {}).on('data', (data) => socket.end(`db: ${data}`)));
    await new Promise<void>((resolve) => db.listen(0, '127.0.0.1', resolve));
    apps.push(db as unknown as Server);
    await tunnel('alice', 'wonderland', `alice-db:5432:localhost:${(db.address() as { port: number }).port}`, 'alice-db:5432');
    /** `ssh -W alice-db:5432` as `user`: a direct-tcpip channel to the alias, its standard input and output joined to it. */
    const reach = (user: string, password: string) => run('ssh', [...sshOptions, '-o', 'LogLevel=ERROR', '-W', 'ALICE-DB:5432',
      '-p', String(step.port), `${user}@localhost`], sshEnv(password), 'select 1\n');
    assert.deepEqual(await reach('alice', 'wonderland'), { stdout: 'db: select 1\n', stderr: '', status: 0 });
    const from = step.output().length;
    // To bob, with no line in TUNNEL_ACCESS, the alias is not there: refused as any destination not in FORWARD_TO.
    assert.deepEqual(await reach('bob', 'builder'), { stdout: '', stderr: 'stdio forwarding failed\r\n', status: 255 });
    await logged(step, / refused to forward to ALICE-DB:5432: not in FORWARD_TO$/m, from);
    writeFileSync(access, 'alice-db bob\n');
    assert.equal((await reach('bob', 'builder')).stdout, 'db: select 1\n');
    // And with ssh -L, as a reader reaches a database: a port of bob's own, each connection to it a channel to the alias.
    const local = await freePort();
    const forward = guarded(spawn('ssh', [...sshOptions, '-o', 'LogLevel=ERROR', '-N', '-L', `${local}:alice-db:5432`,
      '-p', String(step.port), 'bob@localhost'], { env: { ...process.env, ...sshEnv('builder') }, stdio: 'ignore' }));
    try {
      const ask = () => new Promise<string>((resolve) => {
        let answer = '';
        const socket = connect(local, '127.0.0.1', () => socket.end('select 1\n'));
        socket.on('data', (chunk) => (answer += chunk)).on('close', () => resolve(answer)).on('error', () => {});
      });
      // Until ssh -L listens (a connection refused before that answers ''), then the answer through it.
      for (const deadline = Date.now() + 20_000; ;) {
        const answer = await ask();
        if (answer !== '' || Date.now() > deadline) {
          assert.equal(answer, 'db: select 1\n');
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 50)); // the interval of the poll, under its deadline
      }
    } finally {
      forward.kill();
    }
    // Not published: the name has no web tunnel (502, as for an owner not connected), and the app was never asked.
    assert.match((await curl('-i', url('alice-db'))).stdout, /^HTTP\/1\.1 502 /);
  });

  test('headless Chromium opens http://NAME.localhost:PORT/: the app\'s page, and a message live over its WebSocket', async () => {
    const executablePath = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(executablePath, 'Debian\'s chromium is installed (.ci/run installs it): `command -v chromium` finds none');
    // The app: a page whose script opens a WebSocket to where the page came from, and shows what comes on it.
    const server = createServer((request, response) => response.writeHead(200, { 'Content-Type': 'text/html' }).end(`<!doctype html>
<title>alice's app</title><h1>Served from alice's computer</h1><p id="live">waiting</p>
<script>const socket = new WebSocket(\`ws://\${location.host}/live\`);
socket.onmessage = (event) => (document.getElementById('live').textContent = event.data);</script>`));
    new WebSocketServer({ server }).on('connection', (socket, request) => socket.send(`live: hello, visitor from ${request.headers['x-forwarded-for']}`));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    apps.push(server);
    await tunnel('alice', 'wonderland', `alice-page:80:localhost:${(server.address() as { port: number }).port}`, 'alice-page');
    const artifacts = join(root, 'test', 'artifacts');
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'tunnel-page.png');
    rmSync(shot, { force: true });
    // Debian's Chromium, driven by playwright-core as test/bastion.test.ts drives it; it takes NAME.localhost to 127.0.0.1.
    const browser = await chromium.launch({ executablePath, headless: true, args: ['--disable-gpu', '--disable-quic'], timeout: 60_000 });
    try {
      const page = await browser.newPage({ viewport: { width: 800, height: 400 } });
      page.setDefaultTimeout(30_000);
      const shown = await page.goto(url('alice-page'));
      assert.equal(shown?.status(), 200);
      assert.equal(await page.title(), 'alice\'s app');
      await page.locator('#live', { hasText: 'live: hello, visitor from 127.0.0.1' }).waitFor();
      await page.screenshot({ path: shot });
      assert.ok(statSync(shot).size > 5_000, 'a screenshot of the page');
    } finally {
      await browser.close();
    }
  });

  test('what an HTTP client sends never reaches the wrong tunnel: Host spelled otherwise, smuggling, garbage', async () => {
    await tunnel('alice', 'wonderland', `alice-host:80:localhost:${await started('G')}`, 'alice-host');
    // Uppercase, a trailing dot, a port: the same name.
    for (const host of [`ALICE-HOST.LOCALHOST:${http}`, `alice-host.localhost.:${http}`, 'alice-host.localhost']) {
      assert.match((await curl('-H', `Host: ${host}`, `http://127.0.0.1:${http}/`)).stdout, /^G GET \/ /, host);
    }
    /** The front's whole answer to `raw`, sent as it is on a connection of its own. */
    const answer = (raw: string) => new Promise<string>((resolve) => {
      const socket = connect(http, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk) => (text += chunk)).on('error', () => {}).on('close', () => resolve(text));
      socket.end(raw);
    });
    // Content-Length beside Transfer-Encoding, the start of a smuggled request: refused, and no app is asked.
    const smuggled = await answer(`POST / HTTP/1.1\r\nHost: alice-host.localhost\r\nContent-Length: 4\r\n`
      + 'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: alice-host.localhost\r\n\r\n');
    assert.match(smuggled, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.doesNotMatch(smuggled, /G GET/);
    assert.match(await answer('NOT HTTP AT ALL\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(await answer(`GET / HTTP/1.1\r\nHost: alice-host.localhost.evil.example\r\n\r\n`), /^HTTP\/1\.1 404 /);
    assert.match(await answer(`GET / HTTP/1.1\r\n\r\n`), /^HTTP\/1\.1 400 /); // no Host at all
    assert.match((await curl(url('alice-host'))).stdout, /^G GET \/ /); // and it serves on
  });
});

describe('step 22 attacked: what a public front must survive', { timeout: 240_000 }, () => {
  const front = useTunnels({ ...env, TUNNEL_NAMES: join(dir, 'attacked-names'), TUNNEL_CONNECTIONS_MAX: '20' });
  const { apps, tunnels } = front;
  let [step, http] = [front.step, 0];
  before(() => ({ step, http } = front));
  /** An app on a free port whose every request gets `handle`; resolves with its port. */
  const started = async (handle: RequestListener) => {
    const server = createServer(handle);
    apps.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  };
  const tunnel = async (address: string, port: number, [user, password] = ['alice', 'wonderland'], name = address) => {
    const from = step.output().length;
    tunnels.push(guarded(spawn('ssh', [...sshOptions, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${address}:80:localhost:${port}`,
      '-p', String(step.port), `${user}@localhost`], { env: { ...process.env, ...sshEnv(password!) }, stdio: 'ignore' })));
    await logged(step, new RegExp(` ${user} bound ${name} \\(`), from);
  };
  /** A GET of `name`'s page: its status and body (a fresh connection each time). */
  const get = (name: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = httpGet({ host: '127.0.0.1', port: http, path: '/', headers: { Host: `${name}.localhost:${http}` }, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk)).on('end', () => resolve({ status: response.statusCode!, body }));
    });
    request.on('error', reject);
  });

  test('slowloris: 300 connections sending their headers a byte a second are closed; the others are served meanwhile', async () => {
    await tunnel('alice-slow', await started((request, response) => response.end('served\n')));
    const sockets = Array.from({ length: 300 }, () => connect(http, '127.0.0.1').on('error', () => {}).resume());
    let closed = 0;
    for (const socket of sockets) socket.once('close', () => (closed += 1));
    const header = `GET / HTTP/1.1\r\nHost: alice-slow.localhost\r\nX-Slow: ${'a'.repeat(100)}`;
    let sent = 0;
    const drip = setInterval(() => {
      const byte = header[sent++ % header.length]!;
      for (const socket of sockets) if (socket.writable) socket.write(byte);
    }, 1000);
    try {
      for (let i = 0; i < 5; i++) assert.deepEqual(await get('alice-slow'), { status: 200, body: 'served\n' });
      // Node's headersTimeout (10 s), checked each second: all are closed well within the wait.
      await waitFor('every slow connection closed', () => closed === 300 || undefined, 30_000);
    } finally {
      clearInterval(drip);
      sockets.forEach((socket) => socket.destroy());
    }
    assert.deepEqual(await get('alice-slow'), { status: 200, body: 'served\n' });
  });

  test('10,000 requests to names no one has: each a 404, the step\'s memory bounded, a tunnel served after', async () => {
    await tunnel('alice-after', await started((request, response) => response.end('after\n')));
    const peak = await peakDuring(step.pid, async () => {
      let next = 0;
      await Promise.all(Array.from({ length: 50 }, async () => {
        while (next < 10_000) {
          const n = next++;
          const { status } = await get(`nobody-${n}`);
          assert.equal(status, 404, `request ${n}`);
        }
      }));
    });
    assert.ok(peak < 200, `RSS at most ${peak.toFixed(0)} MiB`);
    assert.deepEqual(await get('alice-after'), { status: 200, body: 'after\n' });
  });

  test('an app that never answers holds TUNNEL_CONNECTIONS_MAX (20) of its owner\'s, then 503; other users\' names are served', async () => {
    const held: ServerResponse[] = [];
    let answering = false; // until the end: then it answers what comes
    await tunnel('alice-stuck', await started((request, response) => (answering ? response.end('now\n') : held.push(response))));
    await tunnel('bob-0', await started((request, response) => response.end('free\n')), ['bob', 'builder']);
    const waiting = Array.from({ length: 20 }, () => get('alice-stuck').catch(() => undefined));
    await waitFor('the 20 requests at the app', () => held.length === 20 || undefined);
    const refused = await get('alice-stuck');
    assert.equal(refused.status, 503);
    assert.equal(refused.body, '503: alice-stuck\'s owner has as many connections as they may (TUNNEL_CONNECTIONS_MAX)\n');
    assert.deepEqual(await get('bob-0'), { status: 200, body: 'free\n' });
    answering = true;
    for (const response of held) response.end('late\n');
    await Promise.all(waiting);
    // Each answered request gives its place back, as its channel closes.
    for (const deadline = Date.now() + 20_000; (await get('alice-stuck')).status !== 200;) {
      assert.ok(Date.now() < deadline, 'no place given back in 20 s');
    }
  });

  test('an app that never reads: a 50 MB upload stalls at the windows, and the step keeps no more than they hold', async () => {
    await tunnel('alice-deaf', await started((request) => request.pause())); // reads nothing, answers nothing
    const before = residentMiB(step.pid);
    const peak = await peakDuring(step.pid, () => new Promise<void>((resolve) => {
      const upload = httpRequest({ host: '127.0.0.1', port: http, method: 'POST', path: '/', agent: false,
        headers: { Host: `alice-deaf.localhost:${http}`, 'Content-Length': 50_000_000 } });
      upload.on('error', () => resolve());
      const chunk = Buffer.alloc(1 << 20);
      let written = 0;
      const write = () => {
        while (written < 50 && upload.write(chunk)) written++;
        if (written < 50) upload.once('drain', () => (written++, write()));
      };
      write();
      // Five seconds of offering it: the front takes what the channel's window and the sockets hold, then waits.
      setTimeout(() => (upload.destroy(), resolve()), 5000);
    }));
    assert.ok(peak - before < 50, `RSS from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  });

  test('a made-up name in use is its user\'s: bob asking for it is refused, and every request goes to alice\'s app', async () => {
    const port = await started((request, response) => response.end('alice\'s\n'));
    const from = step.output().length;
    tunnels.push(guarded(spawn('ssh', [...sshOptions, '-N', '-R', `80:localhost:${port}`, '-p', String(step.port), 'alice@localhost'],
      { env: { ...process.env, ...sshEnv('wonderland') }, stdio: 'ignore' })));
    const name = (await logged(step, / alice bound ([a-z][0-9a-f]{7}) \(/, from))[1]!;
    const refused = await run('ssh', [...sshOptions, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${name}:80:localhost:9`,
      '-p', String(step.port), 'bob@localhost'], sshEnv('builder'));
    assert.equal(refused.status, 255);
    await logged(step, new RegExp(` refused tcpip-forward of "${name}":80: the name ${name} is in use by another user$`, 'm'), from);
    for (let i = 0; i < 4; i++) assert.deepEqual(await get(name), { status: 200, body: 'alice\'s\n' });
    const file = join(dir, 'attacked-names'); // (none yet when no name has been owned)
    assert.doesNotMatch(existsSync(file) ? readFileSync(file, 'utf8') : '', new RegExp(name));
  });

  test('answers never read, then dropped, and requests reset before their channel opens: the owner\'s places come back', async () => {
    const big = Buffer.alloc(20_000_000);
    let asked = 0;
    // (bob's: an upload alice's app never read may hold one of her places until the front's 60 s for a request end.)
    await tunnel('bob-1', await started((request, response) => {
      asked += 1;
      response.end(request.url === '/big' ? big : 'small\n');
    }), ['bob', 'builder']);
    // Twenty GETs of 20 MB whose answers are never read (TUNNEL_CONNECTIONS_MAX of them), then dropped.
    const readers = Array.from({ length: 20 }, () => connect(http, '127.0.0.1').on('error', () => {}).pause());
    for (const socket of readers) socket.write(`GET /big HTTP/1.1\r\nHost: bob-1.localhost\r\n\r\n`);
    await waitFor('the twenty at the app', () => asked === 20 || undefined);
    for (const socket of readers) socket.destroy();
    // Then 150 requests, each reset as soon as it is sent: before the front has its channel.
    for (let i = 0; i < 150; i++) {
      const socket = connect(http, '127.0.0.1').on('error', () => {});
      socket.write(`GET / HTTP/1.1\r\nHost: bob-1.localhost\r\n\r\n`, () => socket.resetAndDestroy());
    }
    for (const deadline = Date.now() + 20_000; ;) {
      const answer = await get('bob-1');
      if (answer.status === 200) break;
      assert.ok(Date.now() < deadline, `still ${answer.status} after 20 s: ${answer.body}`);
    }
  });

  test('an upgrade the app does not take: its answer is not passed on as a pipe, and what follows never reaches it', async () => {
    const seen: string[] = [];
    await tunnel('alice-plain', await started((request, response) => {
      seen.push(`${request.method} ${request.url} ${request.headers['x-forwarded-for']}`);
      response.end('plain\n'); // and keeps the connection alive, as Go's and Python's servers do
    }));
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(http, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk) => (text += chunk)).on('error', () => {}).on('close', () => resolve(text));
      socket.write('GET /first HTTP/1.1\r\nHost: alice-plain.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'
        + 'GET /second HTTP/1.1\r\nHost: anything.example\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n');
    });
    assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n[^]*502: the tunnel's app did not take the upgrade \(it answered 200\)\n$/);
    assert.deepEqual(seen, ['GET /first 127.0.0.1']);
  });

  test('a password on one of a name\'s tunnels is asked for every request; the client\'s own X-Forwarded-* are not passed on', async () => {
    const headers: string[] = [];
    const port = await started((request, response) => {
      const h = request.headers;
      headers.push(`${h.host} ${h['x-forwarded-for']} ${h.forwarded} ${h['x-real-ip']}`);
      response.end('in\n');
    });
    await tunnel('[v:pw@alice-mixed]', port, undefined, 'alice-mixed');
    await tunnel('alice-mixed', port);
    for (let i = 0; i < 4; i++) assert.equal((await get('alice-mixed')).status, 401);
    const spoofed = await run('curl', ['-sS', '-u', 'v:pw', '-H', 'X-Forwarded-For: 1.2.3.4', '-H', 'Forwarded: for=1.2.3.4',
      '-H', 'X-Real-IP: 1.2.3.4', '-H', 'Connection: host, x-real-ip', `http://127.0.0.1:${http}/`, '-H', `Host: alice-mixed.localhost:${http}`]);
    assert.equal(spoofed.stdout, 'in\n');
    assert.deepEqual(headers, [`alice-mixed.localhost:${http} 127.0.0.1 undefined undefined`]);
  });

  test('an app that answers what is not HTTP gets its visitor a 502, and its owner\'s connection goes on', async () => {
    const odd = createTcpServer((socket) => socket.on('error', () => {}).end('HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n'));
    await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
    try {
      const fine = await started((request, response) => response.end('fine\n'));
      const from = step.output().length;
      // One connection of alice's with both tunnels.
      tunnels.push(guarded(spawn('ssh', [...sshOptions, '-N', '-R', `alice-odd:80:localhost:${(odd.address() as { port: number }).port}`,
        '-R', `alice-fine:80:localhost:${fine}`, '-p', String(step.port), 'alice@localhost'], { env: { ...process.env, ...sshEnv('wonderland') }, stdio: 'ignore' })));
      await logged(step, / alice bound alice-fine \(/, from);
      await logged(step, / alice bound alice-odd \(/, from);
      const answer = await get('alice-odd');
      assert.equal(answer.status, 502);
      assert.deepEqual(await get('alice-fine'), { status: 200, body: 'fine\n' });
    } finally {
      odd.close();
    }
  });

  test('2000 tcpip-forward requests on one connection: MAX_REMOTE_FORWARDS (10) bound, and at most 10 names owned', async () => {
    const client = await ssh2Login(step.port, 'bob', 'builder');
    try {
      const results = await Promise.all(Array.from({ length: 2000 }, (unused, i) => new Promise<boolean>((resolve) =>
        client.forwardIn(`bob-${i}`, 80, (err) => resolve(!err)))));
      assert.equal(results.filter(Boolean).length, 10);
    } finally {
      client.end();
    }
    const owned = readFileSync(join(dir, 'attacked-names'), 'utf8').split('\n').filter((line) => line.endsWith(' bob'));
    assert.equal(owned.length, 10);
    // A second connection of bob's: past the 10 names a user may own, new names are refused.
    const second = await ssh2Login(step.port, 'bob', 'builder');
    try {
      assert.equal(await new Promise<boolean>((resolve) => second.forwardIn('bob-new', 80, (err) => resolve(!err))), false);
      assert.equal(await new Promise<boolean>((resolve) => second.forwardIn('bob-1', 80, (err) => resolve(!err))), true);
    } finally {
      second.end();
    }
  });
});
