// Step 11, port forwarding, driven by OpenSSH's ssh -L, -D and -R and by curl, then attacked through ssh2's client.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, get, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { peakDuring, remoteForwardBurst, residentMiB } from './hostile.ts';
import { count, freePort, guarded, hashingApp, logged, quiet, run, ssh2Login, sshEnv, sshOptions, useStep, waitFor } from './helpers.ts';

const BODY = randomBytes(20 * 1024 * 1024);

/** A web server on a free loopback port: `/big` is 20 MiB of random bytes, `/slow` 100 MiB, anything else "hello". */
let web: HttpServer;
let webPort: number;
before(async () => {
  web = createHttpServer((request, response) => {
    if (request.url === '/big') return response.end(BODY);
    if (request.url === '/slow') {
      // As much as the reader takes, up to 100 MiB, and no more than it takes: what a real server does.
      let left = 100;
      const more = () => {
        while (left > 0) {
          left -= 1;
          if (!response.write(Buffer.alloc(1024 * 1024))) return void response.once('drain', more);
        }
        response.end();
      };
      return more();
    }
    response.end('hello\n');
  });
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  webPort = (web.address() as AddressInfo).port;
});
after(() => web.close());

/** Whether something listens on a loopback port, found by trying to listen there too (connecting would be noticed). */
async function taken(port: number): Promise<boolean> {
  const probe = createServer();
  const inUse = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(true));
    probe.listen(port, '127.0.0.1', () => resolve(false));
  });
  if (!inUse) await new Promise((resolve) => probe.close(resolve));
  return inUse;
}

/** Whether something accepts connections on a loopback port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** OpenSSH's ssh with ARGS (-N and forwarding options), running until `stop()`; what it prints on stderr, so far. */
function forwardingSsh(port: number, args: string[]) {
  const child: ChildProcess = guarded(spawn('ssh', [...sshOptions, '-N', '-p', String(port), ...args, 'alice@localhost'], {
    env: { ...process.env, ...sshEnv('wonderland') },
    stdio: ['ignore', 'ignore', 'pipe'],
  }));
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit');
  return { stderr: () => stderr, stop: async () => (child.kill(), await exited) };
}

/** Polls `check` until it resolves to true; fails after 20 s. (The 50 ms is the time between two tries, not a wait.) */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 20_000; !(await check());) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** GET http://127.0.0.1:PORT/PATH; resolves with the body. */
function fetchBody(port: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks)));
      response.on('error', reject);
    }).on('error', reject);
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('step 11: port forwarding with OpenSSH', { timeout: 120_000 }, () => {
  const step = useStep('11-port-forwarding.ts');

  test('ssh -L carries 20 MiB from a web server, byte for byte', async () => {
    const local = await freePort();
    const client = forwardingSsh(step().port, ['-L', `${local}:localhost:${webPort}`]);
    try {
      await until('ssh -L to listen', () => taken(local));
      const body = await fetchBody(local, '/big');
      assert.equal(body.length, BODY.length);
      assert.equal(sha256(body), sha256(BODY));
    } finally {
      await client.stop();
    }
  });

  test('ssh -D: curl through SOCKS, the name resolved by the server', async () => {
    const local = await freePort();
    const client = forwardingSsh(step().port, ['-D', String(local)]);
    try {
      await until('ssh -D to listen', () => taken(local));
      assert.deepEqual(await run('curl', ['-sS', '--socks5-hostname', `127.0.0.1:${local}`, `http://localhost:${webPort}/`]),
        { stdout: 'hello\n', stderr: '', status: 0 });
    } finally {
      await client.stop();
    }
  });

  test('a destination outside FORWARD_TO is refused with its reason, and logged once', async () => {
    const local = await freePort();
    const client = forwardingSsh(step().port, ['-L', `${local}:10.1.2.3:80`]);
    try {
      await until('ssh -L to listen', () => taken(local));
      await assert.rejects(fetchBody(local, '/'));
      await waitFor('the refusal', () => /open failed/.test(client.stderr()) || undefined);
      assert.match(client.stderr(),
        /channel \d+: open failed: administratively prohibited: 10\.1\.2\.3:80 is not a destination this server forwards to/);
      assert.equal(count(step(), /refused to forward to 10\.1\.2\.3:80: not in FORWARD_TO$/gm), 1);
    } finally {
      await client.stop();
    }
  });

  test('100 forwarded connections at once', async () => {
    const local = await freePort();
    const client = forwardingSsh(step().port, ['-L', `${local}:localhost:${webPort}`]);
    try {
      await until('ssh -L to listen', () => taken(local));
      const bodies = await Promise.all(Array.from({ length: 100 }, () => fetchBody(local, '/')));
      assert.deepEqual(new Set(bodies.map(String)), new Set(['hello\n']));
    } finally {
      await client.stop();
    }
  });

  test('half-closed connections both ways: an answer after the request\'s end, a request after the answer\'s end', async () => {
    // An app that reads to the end, then answers with the hash of what it read and 1 MiB; and one that says hello and
    // ends its side at once, then tells the test what it still read.
    const hashing = await hashingApp();
    let lateRead = '';
    let lateEnded = () => {};
    const lateDone = new Promise<void>((resolve) => (lateEnded = resolve));
    const greeting = createServer({ allowHalfOpen: true }, (socket) => {
      socket.end('hello\n');
      socket.on('data', (chunk) => (lateRead += chunk)).on('end', () => lateEnded()).on('error', () => {});
    });
    greeting.listen(0, '127.0.0.1');
    await once(greeting, 'listening');
    const local = await freePort();
    const remote = forwardingSsh(step().port, ['-R', `0:localhost:${hashing.port}`]);
    const forward = forwardingSsh(step().port, ['-L', `${local}:localhost:${(greeting.address() as AddressInfo).port}`]);
    try {
      const allocated = await waitFor('the allocated port', () =>
        Number(/Allocated port (\d+) for remote forward/.exec(remote.stderr())?.[1]) || undefined);
      // ssh -R: 3 MB sent, then the end; the answer comes after it.
      await hashing.ask({ port: allocated, host: '127.0.0.1' });
      // ssh -L: the app's hello and end come first; what is sent after them still reaches it.
      await until('ssh -L to listen', () => taken(local));
      const hello = await new Promise<string>((resolve, reject) => {
        let heard = '';
        const socket = connect({ port: local, host: '127.0.0.1', allowHalfOpen: true });
        socket.on('data', (chunk) => (heard += chunk)).on('end', () => (socket.end('late\n'), resolve(heard))).on('error', reject);
      });
      assert.equal(hello, 'hello\n');
      await lateDone;
      assert.equal(lateRead, 'late\n');
    } finally {
      await remote.stop();
      await forward.stop();
      hashing.close();
      greeting.close();
    }
  });

  test('ssh -R 0: the port ssh prints serves, and is closed once ssh has gone', async () => {
    const client = forwardingSsh(step().port, ['-R', `0:localhost:${webPort}`]);
    let allocated = 0;
    try {
      allocated = await waitFor('the allocated port', () =>
        Number(/Allocated port (\d+) for remote forward/.exec(client.stderr())?.[1]) || undefined);
      assert.equal(String(await fetchBody(allocated, '/')), 'hello\n');
    } finally {
      await client.stop();
    }
    await quiet(step());
    await until('the port to close', async () => !(await accepts(allocated)));
  });
});

/** Asks for a forward with ssh2's client: resolves with the port the server listens on, or rejects. */
function forwardIn(client: ssh2.Client, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    // A request the step never answers is a failure of its own, not a wait for the test's time-out.
    const timer = setTimeout(() => reject(new Error(`no answer for port ${port}`)), 10_000);
    client.forwardIn('127.0.0.1', port, (err, got) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(got);
    });
  });
}

/** Opens a direct-tcpip channel (what ssh -L does for each connection); resolves with it, or rejects. */
function forwardOut(client: ssh2.Client, host: string, port: number): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => {
    // A request the step never answers is a failure of its own, not a wait for the test's time-out.
    const timer = setTimeout(() => reject(new Error(`no answer for ${JSON.stringify(host.slice(0, 20))}`)), 10_000);
    client.forwardOut('127.0.0.1', 1, host, port, (err, channel) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(channel);
    });
  });
}

describe('step 11 attacked', { timeout: 120_000 }, () => {
  const step = useStep('11-port-forwarding.ts', { env: { MAX_FORWARDS: '20', MAX_REMOTE_FORWARDS: '3' } });

  test('a client that reads nothing of a 100 MiB download does not grow the step', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    try {
      const before = residentMiB(step().pid);
      const peak = await peakDuring(step().pid, async () => {
        const channel = await forwardOut(client, 'localhost', webPort);
        channel.write('GET /slow HTTP/1.0\r\n\r\n');
        channel.pause(); // and never read: only the window ssh2 gives is sent
        // A wait, not a condition: time for the step to take in all 100 MiB, were it to read on (a loopback carries
        // that in well under a second); what is checked is that it does not.
        await new Promise((resolve) => setTimeout(resolve, 3000));
      });
      assert.ok(peak - before < 40, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    } finally {
      client.end();
    }
  });

  test('one ssh -L serves more connections, one after another, than MAX_FORWARDS: each one closed gives its place back', async () => {
    const local = await freePort();
    const client = forwardingSsh(step().port, ['-L', `${local}:localhost:${webPort}`]);
    try {
      await until('ssh -L to listen', () => taken(local));
      // Each a connection of its own (no agent), closed by the web server after its answer: 60, with MAX_FORWARDS 20.
      for (let i = 0; i < 60; i++) assert.equal(String(await fetchBody(local, '/')), 'hello\n', `request ${i + 1}`);
      assert.equal(count(step(), /MAX_FORWARDS/g), 0);
    } finally {
      await client.stop();
    }
  });

  test('ports below 1024, more than MAX_REMOTE_FORWARDS listeners and unknown names are refused; cancel works', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    try {
      await assert.rejects(forwardIn(client, 80));
      const ports = [await forwardIn(client, 0), await forwardIn(client, 0), await forwardIn(client, 0)];
      await assert.rejects(forwardIn(client, 0), 'a fourth listener');
      for (const port of ports) assert.ok(await accepts(port), `listening on ${port}`);
      await new Promise<void>((resolve, reject) => client.unforwardIn('127.0.0.1', ports[0]!, (err) => (err ? reject(err) : resolve())));
      await until('the cancelled port to close', async () => !(await accepts(ports[0]!)));
      assert.ok(await accepts(ports[1]!), 'the others stay');
      await assert.rejects(forwardIn(client, ports[1]!), 'a port in use');
    } finally {
      client.end();
    }
  });

  test('a burst of tcpip-forward requests in one chunk: MAX_REMOTE_FORWARDS granted, the rest refused', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    const openFiles = () => readdirSync(`/proc/${step().pid}/fd`).length;
    const before = openFiles();
    try {
      // Sent together, before any listener has had time to listen: each must be counted as it is granted.
      const granted = await remoteForwardBurst(client, 60);
      assert.equal(granted.length, 3, `${granted.length} of 60 granted`);
      assert.ok(openFiles() - before <= 4, `open files went from ${before} to ${openFiles()}`);
      for (const port of granted) {
        await new Promise<void>((resolve, reject) => client.unforwardIn('127.0.0.1', port, (err) => (err ? reject(err) : resolve())));
      }
      // Cancelled ones give their places back.
      assert.equal((await remoteForwardBurst(client, 10)).length, 3);
    } finally {
      client.end();
    }
  });

  test('ports out of range are refused and answered, and take no place', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    try {
      for (const port of [65536, 70000, 2 ** 32 - 1]) {
        await assert.rejects(forwardIn(client, port), `listening on ${port}`);
        const refusal: Error = await forwardOut(client, '127.0.0.1', port).then(() => assert.fail(String(port)), (err) => err);
        assert.match(refusal.message, new RegExp(`: ${port} is not a port$`));
      }
      await assert.rejects(forwardOut(client, '127.0.0.1', 0), /0 is not a port$/);
      // None of them kept a place: all 20 (MAX_FORWARDS) and 3 (MAX_REMOTE_FORWARDS) are there to be had.
      const channels = await Promise.all(Array.from({ length: 20 }, () => forwardOut(client, 'localhost', webPort)));
      for (const channel of channels) channel.destroy();
      const ports = await Promise.all(Array.from({ length: 3 }, () => forwardIn(client, 0)));
      assert.equal(new Set(ports).size, 3);
    } finally {
      client.end();
    }
    assert.doesNotMatch(step().output(), /internal error/);
  });

  test('listeners close when their connection is cut, not ended', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    const port = await forwardIn(client, 0);
    (client as unknown as { _sock: Socket })._sock.destroy();
    await until('the port to close', async () => !(await accepts(port)));
  });

  test('more than MAX_FORWARDS channels at once are refused; bad destinations fail; the step stays up', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    try {
      const results = await Promise.allSettled(Array.from({ length: 30 }, () => forwardOut(client, 'localhost', webPort)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 20);
      // Closed, and their close confirmed by the step, before the next requests: else they would still count.
      await Promise.all(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
        .map((channel) => {
          const closed = new Promise((resolve) => channel.once('close', resolve));
          channel.resume(); // ssh2 reports the close of a channel only once its input has been read to the end
          channel.destroy();
          return closed;
        }));
      for (const host of ['', 'a'.repeat(5000), 'local\0host', '::ffff:10.0.0.1', '0.0.0.0', '127.0.0.1\n']) {
        const refusal: Error = await forwardOut(client, host, webPort).then(() => assert.fail(JSON.stringify(host)), (err) => err);
        // Refused by policy, with the destination sent back escaped and cut short.
        assert.match(refusal.message, /^\(SSH\) Channel open failure: [^\0\n]* (is not a destination|more characters)/);
        assert.ok(refusal.message.length < 400, `${refusal.message.length} characters`);
      }
      const closed = await freePort();
      await assert.rejects(forwardOut(client, 'localhost', closed), 'nothing listens there');
      // The refusals above freed their places, each before it was answered (shared/server/limits.ts): 20 open again
      // at once.
      const again = await Promise.all(Array.from({ length: 20 }, () => forwardOut(client, 'localhost', webPort)));
      for (const channel of again) channel.destroy();
    } finally {
      client.end();
    }
    await logged(step(), /refused a forwarded connection: 20 are open on this connection \(MAX_FORWARDS\)$/m);
  });
});

describe('step 11: FORWARD_TO matches IPv4 and IPv6 blocks apart', { timeout: 60_000 }, () => {
  // ::/0 is every IPv6 address and no IPv4 one: 127.0.0.1, however it is spelled, is outside this list.
  const step = useStep('11-port-forwarding.ts', { env: { FORWARD_TO: '10.0.0.0/8,::/0' } });

  test('every spelling of 127.0.0.1 is refused; an IPv6 address is let through', async () => {
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    try {
      for (const host of ['127.0.0.1', '2130706433', '0', '127.1', '0x7f.1', 'localhost', '::ffff:7f00:1',
        '::ffff:127.0.0.1', '::FFFF:7F00:0001', '0:0:0:0:0:ffff:7f00:1', '0::ffff:127.0.0.1']) {
        const refusal: Error = await forwardOut(client, host, webPort).then(() => assert.fail(host), (err) => err);
        assert.match(refusal.message, /is not a destination this server forwards to$/, host);
      }
      // ::1 is in ::/0: let through, and only the connection fails (the web server listens on 127.0.0.1 alone).
      const refusal: Error = await forwardOut(client, '::1', webPort).then(() => assert.fail('::1'), (err) => err);
      assert.doesNotMatch(refusal.message, /is not a destination/);
    } finally {
      client.end();
    }
  });
});
