// The fixes to ssh2 itself, in shared/patches/ (applied by `npm install`), each tested on its own: an ssh2 server
// in this process, so that its state can be looked at, and an ssh2 client that sends what OpenSSH never would.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import type { Algorithms, Connection, PseudoTtyInfo, PublicKeyAuthContext, ServerChannel } from 'ssh2';
import { newHostKey } from '../shared/server/host-keys.ts';
import { parseCertificate, signedByCertifiedKey, type Certificate } from '../shared/login/openssh-certificate.ts';
import { guarded, root, sshOptions, temporaryDir, Terminal, todayRuntime, todaysSsh, waitFor } from './helpers.ts';
import { raw as rawClient, rawSession } from './hostile.ts';
import { softwareSecurityKey } from './security-key-token.ts';
import { patchParts, withParts } from '../shared/tools/patch-series.ts';
import { bindingProblem } from '../shared/tools/crypto-binding.ts';

/** Applies the one part `name` to a fresh ssh2 1.17.0 with `git apply`, as a pull request would be; `file` of lib/ after. */
function appliedAlone(name: string, file: string): string {
  const { dir: made } = withParts(0);
  try {
    const part = patchParts().find((each) => each.name === name)!;
    execFileSync('git', ['apply', join(root, 'shared', 'patches', part.file)], { cwd: made, stdio: 'pipe' });
    return readFileSync(join(made, 'node_modules', 'ssh2', 'lib', file), 'utf8');
  } finally {
    rmSync(made, { recursive: true });
  }
}

// Compression too: a closed zlib stream was what threw first.
const algorithms: Algorithms = { compress: ['zlib@openssh.com'] };

/** The protocol object of ssh2's client and server connections: the patched code, and messages to send raw. */
interface RawProtocol {
  session(chan: number, window: number, packetSize: number): void;
  exec(chan: number, command: string, wantReply: boolean): void;
  channelClose(chan: number): void;
  channelData(chan: number, data: Buffer): void;
}
const raw = (client: ssh2.Client) => (client as unknown as { _protocol: RawProtocol })._protocol;
/** The server's number for a channel the client opened (ssh2 keeps it, but its types do not say so). */
const remoteId = (channel: ssh2.ClientChannel) => (channel as unknown as { outgoing: { id: number } }).outgoing.id;
const channelCount = (connection: Connection) => (connection as unknown as { _chanMgr: { _count: number } })._chanMgr._count;

/** A raw channel of the `sftp` subsystem: its SFTP packets are written and read by the test itself. */
function sftpChannel(client: ssh2.Client): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.subsys('sftp', (err, c) => (err ? reject(err) : resolve(c))));
}

describe('the ssh2 patch', { timeout: 60_000 }, () => {
  const connections: Connection[] = [];
  const execs: { command: string; channel: ServerChannel }[] = [];
  const sftpStats: (() => void)[] = [];
  const statPaths: string[] = [];
  const sftpErrors: string[] = [];
  const ptys: PseudoTtyInfo[] = [];
  const envs: string[] = [];
  const signedLogins: PublicKeyAuthContext[] = [];
  let port = 0;
  const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')], algorithms }, (connection) => {
    connections.push(connection);
    connection.on('error', () => {});
    connection.on('authentication', (ctx) => {
      // 'certified' logs in with a key (its certificate's) alone; anyone else with nothing.
      if (ctx.username === 'certified' && ctx.method !== 'publickey') return ctx.reject(['publickey']);
      if (ctx.method === 'publickey' && ctx.signature) signedLogins.push(ctx);
      ctx.accept();
    });
    connection.on('session', (accept) => {
      const session = accept();
      session.on('exec', (acceptExec, reject, { command }) => {
        const channel = acceptExec();
        execs.push({ command, channel });
        // Six packets in answer to one request: success, two of data, exit status, EOF, close.
        if (command === 'burst') channel.write('a'), channel.write('b'), channel.exit(0), channel.end();
      });
      session.on('pty', (acceptPty, reject, info) => (ptys.push(info), acceptPty?.()));
      session.on('env', (acceptEnv, reject, { key }) => (envs.push(key), acceptEnv?.()));
      // An SFTP server that answers nothing until told to, and says how many requests it has been given.
      session.on('sftp', (acceptSftp) => {
        const sftp = acceptSftp();
        const attrs = { mode: 0o100644, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 };
        sftp.on('STAT', (reqid, path) => {
          statPaths.push(path);
          sftpStats.push(() => sftp.attrs(reqid, attrs));
        });
        sftp.on('end', () => sftp.end());
        sftp.on('error', (err: Error) => sftpErrors.push(err.message));
      });
    });
    // A refusal with a reason and a description, as step 11's policy gives it; port 1 is refused without either.
    connection.on('tcpip', (accept, reject, { destPort }) => {
      if (destPort === 1) reject();
      else (reject as (reason: number, description: string) => void)(1, `not to ${destPort}`);
    });
  });
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    for (const connection of connections) connection.end();
    server.close();
  });

  async function login(): Promise<{ client: ssh2.Client; connection: Connection; proven: Promise<unknown> }> {
    const before = connections.length;
    const client = new ssh2.Client();
    client.on('error', () => {});
    // Told the host keys after login, ssh2's client asks for their proofs: a round trip of its own.
    const proven = new Promise((resolve) => client.once('hostkeys', resolve));
    client.connect({ host: '127.0.0.1', port, username: 'anyone', algorithms });
    await once(client, 'ready');
    return { client, connection: connections[before]!, proven };
  }

  function exec(client: ssh2.Client, command: string): Promise<ssh2.ClientChannel> {
    return new Promise((resolve, reject) => client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel))));
  }

  test('write-after-close: sending on a channel after its connection is gone does nothing, and throws nothing', async () => {
    const { client, connection } = await login();
    await exec(client, 'first');
    const { channel } = execs.at(-1)!;
    client.destroy();
    await once(connection, 'close');
    // Unpatched, the first of these threw "Invalid Zlib instance" (or "Instance unusable" without compression).
    channel.write('late');
    channel.stderr.write('late');
    channel.exit(0);
    channel.end();
    channel.close();
    connection.end();
  });

  test('one-request-per-session: a second exec on one session is refused, and the step is not asked again', async () => {
    const { client } = await login();
    const channel = await exec(client, 'first');
    const count = execs.length;
    raw(client).exec(remoteId(channel), 'second', true);
    // The connection goes on: a new session still runs its command.
    await exec(client, 'third');
    assert.deepEqual(execs.slice(count - 1).map((e) => e.command), ['first', 'third']);
    client.end();
  });

  test('session-requests-after-start: env and pty-req on a session whose program runs are refused, not left unanswered', async () => {
    const { client } = await login();
    const channel = await exec(client, 'running');
    // The client's own number for the channel, which the server's answers name; each answer takes the next callback.
    const answers = (channel as unknown as { _callbacks: ((failed: boolean) => void)[] })._callbacks;
    const answer = () => new Promise<string>((resolve) => answers.push((failed) => resolve(failed ? 'failure' : 'success')));
    const envAnswer = answer();
    (raw(client) as unknown as { env(chan: number, key: string, val: string, wantReply: boolean): void })
      .env(remoteId(channel), 'LATE', 'value', true);
    const ptyAnswer = answer();
    (raw(client) as unknown as { pty(chan: number, rows: number, cols: number, height: number, width: number,
      term: string, modes: null, wantReply: boolean): void }).pty(remoteId(channel), 24, 80, 0, 0, 'xterm', null, true);
    // Unpatched, neither is ever answered, and the deadline passes.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
    });
    const [envSaid, ptySaid] = await Promise.race([Promise.all([envAnswer, ptyAnswer]), deadline]).finally(() => clearTimeout(timer));
    assert.deepEqual([envSaid, ptySaid], ['failure', 'failure']);
    assert.ok(!envs.includes('LATE'), 'the listener is not asked');
    // Before the program starts, the same request is the listener's to answer.
    const fresh = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.exec('with env', { env: { EARLY: 'value' } }, (err, c) => (err ? reject(err) : resolve(c))));
    assert.ok(envs.includes('EARLY'));
    fresh.close();
    client.end();
  });

  test('session-closed-early: a session closed before any request is freed, and its close confirmed', async () => {
    const { client, connection } = await login();
    for (let i = 0; i < 200; i++) {
      raw(client).session(1000 + i, 2 ** 21, 2 ** 15);
    }
    await waitFor('200 sessions open', () => channelCount(connection) === 200 || undefined);
    // The server numbers its channels from 0, in the order they were opened.
    for (let i = 0; i < 200; i++) raw(client).channelClose(i);
    await waitFor('every session freed', () => channelCount(connection) === 0 || undefined);
    client.end();
  });

  test('channel-window: data beyond the window the server gave is dropped, and past a tenth of a window more, the connection ends', async () => {
    const { client, connection } = await login();
    const errors: string[] = [];
    connection.on('error', (err) => errors.push(err.message));
    const channel = await exec(client, 'never reads');
    const serverSide = execs.at(-1)!.channel;
    serverSide.pause();
    // 16 MiB, whatever the window says (the server gave 2 MiB and adjusts it only as it reads), in chunks that
    // do not divide the window: unpatched, ssh2 stopped only at a window of exactly 0, and went below it.
    const chunk = Buffer.alloc(32 * 1024 - 1, 'x');
    const closed = new Promise<void>((resolve) => connection.once('close', () => resolve()));
    for (let i = 0; i < 512; i++) raw(client).channelData(remoteId(channel), chunk);
    await closed;
    // The window (2 MiB) and one adjustment of it (1 MiB), no more: unpatched, all 16 MiB.
    assert.ok(serverSide.readableLength <= 4 * 1024 * 1024, `${serverSide.readableLength} bytes held`);
    assert.deepEqual(errors, ['Peer ignored channel window']);
  });

  test('channel-open-reason: a refused channel carries the reason and the description the listener gives', async () => {
    const { client } = await login();
    try {
      const refusal = (port: number) => new Promise<Error & { reason?: number }>((resolve) =>
        client.forwardOut('127.0.0.1', 1, '127.0.0.1', port, (err) => resolve(err!)));
      const given = await refusal(80);
      assert.equal(given.reason, 1);
      assert.equal(given.message, '(SSH) Channel open failure: not to 80');
      // Without them, as before: "connect failed".
      assert.equal((await refusal(1)).reason, 2);
    } finally {
      client.end();
    }
  });
  test('channel-packet-size: a session whose maximum packet size is under 1024 bytes is refused, with the reason; 1024 is taken', async () => {
    const { client } = await login();
    try {
      const handlers = (raw(client) as unknown as { _handlers: Record<string, (...args: unknown[]) => void> })._handlers;
      const answers: string[] = [];
      const original = { ok: handlers.CHANNEL_OPEN_CONFIRMATION!, failed: handlers.CHANNEL_OPEN_FAILURE! };
      handlers.CHANNEL_OPEN_CONFIRMATION = (p, info) => answers.push(`open ${(info as { recipient: number }).recipient}`);
      handlers.CHANNEL_OPEN_FAILURE = (p, recipient, reason, description) => answers.push(`refused ${recipient}: ${reason} ${description}`);
      try {
        // (A screen of a megabyte was a million packets of 1 byte, made at once: the server served nobody else meanwhile.)
        raw(client).session(900, 2 ** 21, 1);
        raw(client).session(901, 2 ** 21, 1023);
        raw(client).session(902, 2 ** 21, 1024);
        await waitFor('three answers', () => answers.length === 3 || undefined);
        assert.deepEqual(answers, ['refused 900: 4 maximum packet size under 1024 bytes', 'refused 901: 4 maximum packet size under 1024 bytes', 'open 902']);
      } finally {
        Object.assign(handlers, { CHANNEL_OPEN_CONFIRMATION: original.ok, CHANNEL_OPEN_FAILURE: original.failed });
      }
    } finally {
      client.end();
    }
  });

  test('sftp-backpressure: an SFTP server is given at most 64 unanswered requests; the rest wait, in order, and then all are answered', async () => {
    const { client } = await login();
    try {
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
      sftpStats.length = 0;
      statPaths.length = 0;
      let answered = 0;
      for (let i = 0; i < 1000; i++) sftp.stat(`/${i}`, () => (answered += 1));
      await waitFor('64 requests', () => sftpStats.length === 64 || undefined);
      // That no 65th comes can only be seen by waiting: 300 ms, in which unpatched all 1000 arrive.
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Unpatched, all 1000 reached the listener at once.
      assert.equal(sftpStats.length, 64);
      for (let given = 0; given < 1000;) {
        const batch = sftpStats.splice(0);
        given += batch.length;
        for (const reply of batch) reply();
        await waitFor('more requests, or the last answers', () => (sftpStats.length || answered === 1000) || undefined);
      }
      await waitFor('every answer', () => answered === 1000 || undefined);
      assert.deepEqual(statPaths.splice(0), Array.from({ length: 1000 }, (_, i) => `/${i}`));
    } finally {
      client.end();
    }
  });

  test('sftp-answer-order: an SFTP server\'s replies go out in the order of the requests, however the listener answers them', async () => {
    const { client } = await login();
    try {
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
      sftpStats.length = 0;
      const arrived: number[] = [];
      for (let i = 0; i < 10; i++) sftp.stat(`/${i}`, () => arrived.push(i));
      await waitFor('10 requests', () => sftpStats.length === 10 || undefined);
      const replies = sftpStats.splice(0);
      // The last nine answered first: nothing goes out, for the first is not answered yet.
      for (const reply of replies.slice(1).reverse()) reply();
      // That nothing goes out can only be seen by waiting: 300 ms, in which unpatched all nine arrive.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(arrived, []);
      replies[0]!();
      await waitFor('every answer', () => arrived.length === 10 || undefined);
      // Unpatched, 9, 8, ... 1, 0: OpenSSH 9.1 to 9.3's scp cut the file it wrote at the first reply out of order.
      assert.deepEqual(arrived, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      client.end();
    }
  });

  test('sftp-answer-order: a client that gives three requests one reqid gets three answers, and the session goes on', async () => {
    const { client } = await login();
    try {
      const channel = await sftpChannel(client);
      let received = Buffer.alloc(0);
      channel.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
      /** The ids of the packets received after the VERSION packet. */
      const ids = () => {
        const found: number[] = [];
        for (let at = 0; at + 9 <= received.length; at += 4 + received.readUInt32BE(at)) {
          if (received[at + 4] !== 2) found.push(received.readUInt32BE(at + 5)); // 2: VERSION, which has no id
        }
        return found;
      };
      const stat = (reqid: number, path: string) => {
        const name = Buffer.from(path);
        const body = Buffer.alloc(9 + name.length);
        body[0] = 17; // SSH_FXP_STAT
        body.writeUInt32BE(reqid, 1);
        body.writeUInt32BE(name.length, 5);
        name.copy(body, 9);
        const length = Buffer.alloc(4);
        length.writeUInt32BE(body.length);
        return Buffer.concat([length, body]);
      };
      sftpStats.length = 0;
      channel.write(Buffer.from([0, 0, 0, 5, 1, 0, 0, 0, 3])); // INIT, version 3
      channel.write(Buffer.concat([stat(7, '/a'), stat(7, '/b'), stat(7, '/c'), stat(8, '/d')]));
      await waitFor('four requests', () => sftpStats.length === 4 || undefined);
      for (const reply of sftpStats.splice(0).reverse()) reply();
      await waitFor('four answers', () => ids().length === 4 || undefined);
      assert.deepEqual(ids(), [7, 7, 7, 8]);
      channel.write(stat(9, '/e'));
      await waitFor('a fifth request', () => sftpStats.length === 1 || undefined);
      sftpStats.splice(0)[0]!();
      await waitFor('its answer', () => ids().length === 5 || undefined);
      assert.deepEqual(sftpErrors.splice(0), []);
    } finally {
      client.end();
    }
  });

  test('sftp-packet-length: an SFTP packet length of 2^31 or more is refused, not read as a negative number', async () => {
    const { client } = await login();
    try {
      const channel = await sftpChannel(client);
      const closed = new Promise((resolve) => channel.once('close', resolve));
      channel.resume();
      channel.write(Buffer.from([0, 0, 0, 5, 1, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]));
      await closed;
      // Unpatched, ssh2 threw a TypeError, which ended the whole connection.
      assert.deepEqual(sftpErrors.splice(0), ['Packet length 4294967295 exceeds max length of 262144']);
      await exec(client, 'the connection goes on');
    } finally {
      client.end();
    }
  });

  test('sftp-exit-status: an SFTP server that ends its session sends exit status 0 first, as sshd does (scp checks it)', async () => {
    const { client } = await login();
    try {
      const channel = await sftpChannel(client);
      const status = new Promise((resolve) => channel.once('exit', resolve));
      channel.resume();
      channel.end(); // the client's EOF: the server above ends its side
      assert.equal(await status, 0);
    } finally {
      client.end();
    }
  });

  test('terminal-modes: terminal modes reach the server by name; an opcode it does not know is skipped, and 160 or more ends the list', async () => {
    const { client } = await login();
    try {
      const mode = (opcode: number, value: number) => [opcode, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
      // VINTR ^G, IUTF8 (RFC 8160), 43 (no name yet), ECHO off, TTY_OP_ISPEED, then 160 (undefined: the end), ICANON.
      const modes = Buffer.from([...mode(1, 7), ...mode(42, 1), ...mode(43, 9), ...mode(53, 0), ...mode(128, 38400),
        ...mode(160, 1), ...mode(51, 1), 0]);
      await new Promise<void>((resolve, reject) => client.exec('with modes', { pty: { term: 'xterm', modes: modes as never } },
        (err) => (err ? reject(err) : resolve())));
      // Unpatched, ssh2 read the list from its second byte, found TTY_OP_END there, and gave {} for any client.
      assert.deepEqual(ptys.at(-1)?.modes, { VINTR: 7, IUTF8: 1, ECHO: 0, TTY_OP_ISPEED: 38400 });
      // What OpenSSH sends: every mode by name.
      await new Promise<void>((resolve, reject) => client.exec('with modes', { pty: { term: 'xterm', modes: { VEOF: 4, ICANON: 1 } } },
        (err) => (err ? reject(err) : resolve())));
      assert.deepEqual(ptys.at(-1)?.modes, { VEOF: 4, ICANON: 1 });
    } finally {
      client.end();
    }
  });

  test('certificate-logins: a certificate login: the listener gets the certificate\'s type, and the signature and hash of the key it certifies', async () => {
    const dir = temporaryDir();
    for (const [name, type] of [['ca', 'ed25519'], ['user', 'rsa']]) {
      execFileSync('ssh-keygen', ['-q', '-t', type!, '-N', '', '-f', join(dir, name!)]);
    }
    execFileSync('ssh-keygen', ['-q', '-s', join(dir, 'ca'), '-I', 'patch', '-n', 'certified', join(dir, 'user.pub')]);
    const certBlob = Buffer.from(readFileSync(join(dir, 'user-cert.pub'), 'utf8').split(' ')[1]!, 'base64');
    const cert = parseCertificate(certBlob) as Certificate;
    // OpenSSH: asks first (the answer must name the certificate's type, or it gives up), then signs with SHA-2.
    const child = spawn('ssh', [...sshOptions, '-p', String(port), '-i', join(dir, 'user'), '-o', 'IdentitiesOnly=yes',
      '-o', `CertificateFile=${join(dir, 'user-cert.pub')}`, '-o', 'BatchMode=yes', 'certified@127.0.0.1', 'certified'], { stdio: 'ignore' });
    const exec = await waitFor('the command', () => execs.find(({ command }) => command === 'certified'));
    exec.channel.exit(0);
    exec.channel.end();
    assert.equal((await once(child, 'close'))[0], 0);
    const openssh = signedLogins.at(-1)!;
    assert.equal(openssh.key.algo, 'ssh-rsa-cert-v01@openssh.com');
    assert.match(openssh.hashAlgo ?? 'SHA-1', /^sha(256|512)$/);
    // Unpatched, the signature kept its header (named for the key, not the certificate), and held for nobody.
    assert.ok(signedByCertifiedKey(cert, openssh.blob!, openssh.signature!, openssh.hashAlgo));
    // ssh2's client names the signature after the certificate's type: read as well.
    const key = ssh2.utils.parseKey(readFileSync(join(dir, 'user'))) as ssh2.ParsedKey;
    const offered = Object.assign(ssh2.utils.parseKey(readFileSync(join(dir, 'user'))) as ssh2.ParsedKey, { getPublicSSH: () => certBlob });
    const client = new ssh2.Client();
    client.on('error', () => {});
    client.connect({ host: '127.0.0.1', port, username: 'certified', authHandler: () => rawClient(client).authPK('certified',
      offered as never, 'rsa-sha2-256-cert-v01@openssh.com', (data, done) => done(key.sign(data, 'sha256'))) });
    await once(client, 'ready');
    client.end();
    const viaSsh2 = signedLogins.at(-1)!;
    assert.deepEqual([viaSsh2.key.algo, viaSsh2.hashAlgo], ['ssh-rsa-cert-v01@openssh.com', 'sha256']);
    assert.ok(signedByCertifiedKey(cert, viaSsh2.blob!, viaSsh2.signature!, viaSsh2.hashAlgo));
  });

  test('less-kept-per-connection: a logged-in connection keeps no key pair, secret or pooled buffer of its key exchange, and can exchange keys again', async () => {
    interface Kept { _keys: unknown; negotiated: { kex: string }; finish: () => unknown }
    interface KeptProtocol { _kex: Kept; _remoteIdentRaw: Buffer; _decipher: { _tag?: Buffer } }
    const { client, connection } = await login();
    const protocol = (connection as unknown as { _protocol: KeptProtocol })._protocol;
    const check = () => {
      const kex = protocol._kex;
      assert.equal(kex._keys, null);
      // The closure that finished the exchange (and holds the shared secret) is gone from the exchange.
      assert.equal(kex.finish.name, 'finishedAlready');
      assert.equal(kex.negotiated.kex, 'mlkem768x25519-sha256');
      // Small buffers kept for the connection's life have memory of their own, not a slice of an 8 KiB pool.
      assert.equal(protocol._remoteIdentRaw.buffer.byteLength, protocol._remoteIdentRaw.length);
      assert.equal(protocol._decipher._tag?.buffer.byteLength ?? 16, 16);
    };
    check();
    const first = protocol._kex;
    await new Promise<void>((resolve, reject) => connection.rekey((err?: Error) => (err ? reject(err) : resolve())));
    assert.notEqual(protocol._kex, first);
    check();
    const channel = await exec(client, 'after a new key exchange');
    const served = await waitFor('the exec', () => execs.find(({ command }) => command === 'after a new key exchange'));
    served.channel.end('still here\n');
    let said = '';
    channel.on('data', (chunk: Buffer) => (said += chunk));
    await once(channel, 'close');
    assert.equal(said, 'still here\n');
    client.end();
  });

  test('one-write-per-chunk: the packets sent in answer to one chunk from the client leave in one write', async () => {
    const { client, connection, proven } = await login();
    await proven;
    const socket = (connection as unknown as { _sock: { write: (chunk: Buffer) => boolean } })._sock;
    const writes: number[] = [];
    const write = socket.write.bind(socket);
    socket.write = (chunk: Buffer) => (writes.push(chunk.length), write(chunk));
    // All six arrive at once, and are read at once: the listeners must be there before the exec's callback returns.
    const [said, code] = await new Promise<[string, number]>((resolve, reject) => client.exec('burst', (err, channel) => {
      if (err) return reject(err);
      let text = '';
      let status = -1;
      channel.on('data', (chunk: Buffer) => (text += chunk));
      channel.on('exit', (exitCode: number) => (status = exitCode));
      channel.on('close', () => resolve([text, status]));
    }));
    assert.deepEqual([said, code], ['ab', 0]);
    // One write answers the channel's opening, one the exec (six packets; unpatched, six writes).
    assert.equal(writes.length, 2, `written in ${writes.length} writes: ${writes.join(', ')} bytes`);
    client.end();
  });

  test('x25519-jwk: X25519 key pairs are made without the export that deadlocks Node 20 (50,000 in a row, young generation small)', async () => {
    // Node 20 deadlocks in KeyObject.export() when a garbage collection during it destroys the key generation job
    // of that same key pair: the job's destructor waits on the lock the export holds. Unpatched (export after
    // generateKeyPairSync), this child stopped for good within about 7,000 key pairs, every time it was tried.
    const script = `
      import ssh2 from 'ssh2';
      import { once } from 'node:events';
      const server = new ssh2.Server({ hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] }, (c) => {
        c.on('error', () => {});
        c.on('authentication', (ctx) => ctx.accept());
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const client = new ssh2.Client();
      client.connect({ host: '127.0.0.1', port: server.address().port, username: 'x',
        algorithms: { kex: ['curve25519-sha256'] } });
      await once(client, 'ready');
      client.end();
      server.close();
      const exchange = client._protocol._kex; // the connection's Curve25519 exchange, kept for its session id
      for (let i = 0; i < 50000; i++) {
        exchange._keys = null;
        exchange.generateKeys();
        if (exchange.getPublicKey().length !== 32) throw new Error('not a raw X25519 key');
      }
      console.log('made 50000');`;
    const child = guarded(spawn(process.execPath, ['--max-semi-space-size=1', '--input-type=module', '-e', script], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    }));
    let said = '';
    child.stdout.on('data', (chunk) => (said += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    const [code, signal] = await once(child, 'exit');
    clearTimeout(timer);
    assert.deepEqual({ code, signal, said: said.trim() }, { code: 0, signal: null, said: 'made 50000' },
      'the child stopped answering: killed after 45 s');
  });

  /** Logs in with the one key exchange `kex`, and sends 300 packets of 100 bytes through an exec that echoes. */
  async function exchangeAndCarry(kex: 'curve25519-sha256' | 'mlkem768x25519-sha256') {
    const client = new ssh2.Client();
    client.on('error', () => {});
    client.connect({ host: '127.0.0.1', port, username: 'anyone', algorithms: { ...algorithms, kex: [kex as 'curve25519-sha256'] } });
    await once(client, 'ready');
    const channel = await exec(client, `carry ${kex}`);
    const served = await waitFor('the exec', () => execs.find(({ command }) => command === `carry ${kex}`));
    let echoed = 0;
    served.channel.on('data', (chunk: Buffer) => (echoed += chunk.length));
    for (let i = 0; i < 300; i++) channel.write(Buffer.alloc(100, i));
    await waitFor('300 packets', () => echoed === 30_000 || undefined);
    client.end();
  }

  test('x25519-jwk: an X25519 exchange with its keys in and out as JWK logs in, and carries data', () =>
    exchangeAndCarry('curve25519-sha256'));

  test('mlkem768x25519: the post-quantum hybrid exchange logs in, and carries data', () =>
    exchangeAndCarry('mlkem768x25519-sha256'));

  test('padding-pool: the random padding of 1,000 packets takes a few calls into the random source, not 1,000', async () => {
    // In a process of its own: ssh2 takes randomFillSync from node:crypto as it loads, so count it before that.
    const script = `
      const crypto = require('node:crypto');
      const fill = crypto.randomFillSync;
      let calls = 0;
      crypto.randomFillSync = (...args) => (calls += 1, fill(...args));
      const { NullCipher } = require('ssh2/lib/protocol/crypto.js');
      const cipher = new NullCipher(0, () => {});
      const paddings = new Set();
      const before = calls;
      for (let i = 0; i < 1000; i++) {
        const packet = cipher.allocPacket(20 + (i % 8));
        paddings.add(packet.subarray(5 + 20 + (i % 8)).toString('hex'));
      }
      console.log(JSON.stringify({ calls: calls - before, distinct: paddings.size }));`;
    const child = guarded(spawn(process.execPath, ['-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] }));
    let said = '';
    child.stdout.on('data', (chunk) => (said += chunk));
    await once(child, 'exit');
    const { calls, distinct } = JSON.parse(said) as { calls: number; distinct: number };
    // Unpatched, one call for each packet. Padding is 4 to 11 bytes here: 1,000 of them fill a 4 KiB pool a few times.
    assert.ok(calls <= 4, `${calls} calls`);
    assert.ok(distinct > 990, `${distinct} distinct paddings of 1000`);
  });
});

describe('the ssh2 patch: a server that uses the agent ssh -A forwards', { timeout: 60_000 }, () => {
  // A real ssh-agent holding a key, and OpenSSH's ssh forwarding it (or not) to a server in this process.
  const dir = temporaryDir();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
  const socket = join(dir, 'agent.sock');
  const env = { ...process.env, SSH_AUTH_SOCK: socket };
  let agent: ReturnType<typeof spawn> | undefined; // started in before(): a suite whose tests are all filtered out runs no hooks
  let port = 0;
  const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
    connection.on('error', () => {});
    connection.on('authentication', (ctx) => ctx.accept());
    connection.on('session', (accept) => {
      const session = accept();
      session.on('auth-agent', (acceptAgent) => acceptAgent?.());
      // The command is what to ask the agent: its keys, then a signature by the first, checked here.
      session.on('exec', (acceptExec) => {
        const channel = acceptExec();
        connection.openssh_authAgent((err, stream) => {
          if (err) return channel.end(`no agent: ${err.message}\n`);
          const protocol = new ssh2.AgentProtocol(true);
          protocol.pipe(stream).pipe(protocol);
          protocol.getIdentities((err, keys) => {
            if (err || !keys?.length) return channel.end(`no keys: ${err?.message}\n`);
            const data = Buffer.from('signed through the channel');
            protocol.sign(keys[0]!, data, {}, (err, signature) => {
              const key = ssh2.utils.parseKey(keys[0]!.getPublicSSH()) as ssh2.ParsedKey;
              channel.end(`${keys.length} key, ${key.type}, signature holds: ${!err && key.verify(data, signature!) === true}\n`);
              stream.destroy();
            });
          });
        });
      });
    });
  });
  before(async () => {
    agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    await waitFor('the agent', () => existsSync(socket) || undefined);
    execFileSync('ssh-add', ['-q', join(dir, 'key')], { env, stdio: 'ignore' });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    agent?.kill();
    server.close();
  });
  // Not spawnSync: the server is in this process, and must go on running.
  const ssh = (args: string[]) => new Promise<string>((resolve) => {
    const child = guarded(spawn('ssh', [...sshOptions, '-o', 'LogLevel=ERROR', '-o', 'IdentitiesOnly=yes', '-p', String(port),
      ...args, 'anyone@localhost', 'go'], { env, stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk));
    child.on('close', () => resolve(out));
  });

  test('agent-forwarding: with ssh -A, the server opens a channel to the agent, which lists its key and signs', async () => {
    assert.equal(await ssh(['-A']), '1 key, ssh-ed25519, signature holds: true\n');
  });

  test('agent-forwarding: without -A, the client refuses the channel, and the server is told', async () => {
    assert.match(await ssh(['-a']), /^no agent: \S.*\n$/);
  });

  test('agent-forwarding: the part applies on its own to a fresh ssh2 1.17.0, as a pull request would (git apply)', () => {
    assert.match(appliedAlone('agent-forwarding', 'server.js'), /openssh_authAgent\(cb\)/);
  });
});

describe('the ssh2 patch: host certificates', { timeout: 60_000 }, () => {
  // A host CA, and host keys of each kind with certificates from it, as `ssh-keygen -s CA -h` makes them.
  const dir = temporaryDir();
  const keygen = (...args: string[]) => execFileSync('ssh-keygen', ['-q', ...args], { stdio: 'ignore' });
  keygen('-t', 'ed25519', '-N', '', '-f', join(dir, 'ca'));
  keygen('-t', 'ed25519', '-N', '', '-f', join(dir, 'other-ca'));
  for (const type of ['ed25519', 'ecdsa', 'rsa']) {
    keygen('-t', type, '-N', '', '-f', join(dir, type));
    keygen('-s', join(dir, 'ca'), '-I', `host ${type}`, '-h', '-n', 'localhost', join(dir, `${type}.pub`));
  }
  const hostKey = (type: string, certified = type) => ({ key: readFileSync(join(dir, type)),
    certificate: readFileSync(join(dir, `${certified}-cert.pub`), 'utf8') });
  let port = 0;
  const server = new ssh2.Server({ hostKeys: ['ed25519', 'ecdsa', 'rsa'].map((type) => hostKey(type)) }, (connection) => {
    connection.on('error', () => {});
    connection.on('authentication', (ctx) => ctx.accept());
    connection.on('session', (accept) => accept().on('exec', (acceptExec, reject, { command }) => {
      const channel = acceptExec();
      channel.write(`ran ${command}\n`);
      channel.exit(0);
      channel.end();
    }));
  });
  before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => {
    port = (server.address() as { port: number }).port;
    resolve();
  })));
  after(() => server.close());
  /** OpenSSH's ssh, trusting only what one `@cert-authority` line says, and asking nobody. */
  const ssh = (ca: string, algorithm: string) => new Promise<{ out: string; err: string; status: number | null }>((resolve) => {
    const knownHosts = join(dir, `known_hosts-${ca}`);
    writeFileSync(knownHosts, `@cert-authority [localhost]:${port} ${readFileSync(join(dir, `${ca}.pub`), 'utf8')}`);
    const child = guarded(spawn('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes', '-o', `HostKeyAlgorithms=${algorithm}`, '-p', String(port), 'anyone@localhost', algorithm]));
    const result = { out: '', err: '', status: null as number | null };
    child.stdout.on('data', (chunk: Buffer) => (result.out += chunk));
    child.stderr.on('data', (chunk: Buffer) => (result.err += chunk));
    child.on('close', (status) => resolve({ ...result, status }));
  });

  test('host-certificates: with only an @cert-authority line and strict checking, OpenSSH logs in over each kind of certificate', async () => {
    for (const algorithm of ['ssh-ed25519-cert-v01@openssh.com', 'ecdsa-sha2-nistp256-cert-v01@openssh.com',
      'rsa-sha2-512-cert-v01@openssh.com', 'rsa-sha2-256-cert-v01@openssh.com']) {
      assert.deepEqual(await ssh('ca', algorithm), { out: `ran ${algorithm}\n`, err: '', status: 0 });
    }
  });

  test('host-certificates: an RSA key handed over once per SHA-2 name (as the steps do) offers the certificate under each', async () => {
    const rsa = ssh2.utils.parseKey(readFileSync(join(dir, 'rsa'))) as ssh2.ParsedKey;
    const certificate = readFileSync(join(dir, 'rsa-cert.pub'), 'utf8');
    const signingAs = (name: string) => ({ key: Object.create(rsa, { type: { value: name } }) as ssh2.ParsedKey, certificate });
    const steps = new ssh2.Server({ hostKeys: [signingAs('rsa-sha2-512'), signingAs('rsa-sha2-256')] }, (connection) => {
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => ctx.accept());
      connection.on('session', (accept) => accept().on('exec', (acceptExec) => {
        const channel = acceptExec();
        channel.exit(0);
        channel.end('ran\n');
      }));
    });
    await new Promise<void>((resolve) => steps.listen(0, '127.0.0.1', resolve));
    const [saved, stepsPort] = [port, (steps.address() as { port: number }).port];
    try {
      port = stepsPort;
      for (const algorithm of ['rsa-sha2-512-cert-v01@openssh.com', 'rsa-sha2-256-cert-v01@openssh.com']) {
        assert.deepEqual(await ssh('ca', algorithm), { out: 'ran\n', err: '', status: 0 }, algorithm);
      }
    } finally {
      port = saved;
      steps.close();
    }
  });

  test('host-certificates: a certificate from a CA the client does not trust logs in nowhere', async () => {
    const result = await ssh('other-ca', 'ssh-ed25519-cert-v01@openssh.com');
    assert.equal(result.status, 255);
    assert.match(result.err, /Host key verification failed\.\r?\n$/);
  });

  test('host-certificates: a certificate of another key, or of another type of key, is refused as the server is made', () => {
    assert.throws(() => new ssh2.Server({ hostKeys: [hostKey('ed25519', 'rsa')] }), /is not one of a ssh-ed25519 key/);
    keygen('-t', 'ed25519', '-N', '', '-f', join(dir, 'stranger'));
    assert.throws(() => new ssh2.Server({ hostKeys: [hostKey('stranger', 'ed25519')] }), /does not certify this host key/);
  });
});

describe('the ssh2 patch: FIDO security keys', () => {
  const token = softwareSecurityKey;
  type SkKey = ssh2.ParsedKey & { application: string; verify(data: Buffer, signature: Buffer, algo?: string, options?: object): boolean };

  test('security-keys: one kind\'s signature never holds for a key of the other kind, nor for another key of its kind', () => {
    const [ed, ec, other] = [token('ed25519'), token('ecdsa'), token('ed25519')];
    const message = randomBytes(64);
    const [edKey, ecKey, otherKey] = [ed, ec, other].map((made) => ssh2.utils.parseKey(made.line) as SkKey);
    assert.equal(edKey!.verify(message, ed.sign(message, 0x01, 1)), true);
    assert.equal(ecKey!.verify(message, ed.sign(message, 0x01, 1)), false);
    assert.equal(edKey!.verify(message, ec.sign(message, 0x01, 1)), false);
    assert.equal(otherKey!.verify(message, ed.sign(message, 0x01, 1)), false);
  });

  test('security-keys: the part applies on its own to a fresh ssh2 1.17.0, as a pull request would (git apply)', () => {
    assert.match(appliedAlone('security-keys', 'protocol/keyParser.js'), /function parseSKDER\(/);
  });

  for (const kind of ['ed25519', 'ecdsa'] as const) {
    test(`security-keys: ${kind}-sk keys parse from an OpenSSH line and from their wire blob, with their application`, () => {
      const made = token(kind, 'ssh:work');
      for (const input of [made.line, made.blob]) {
        const key = ssh2.utils.parseKey(input) as SkKey;
        assert.ok(!(key instanceof Error), String(key));
        assert.equal(key.type, made.type);
        assert.equal(key.application, 'ssh:work');
        assert.deepEqual(key.getPublicSSH(), made.blob);
        assert.equal(key.isPrivateKey(), false);
      }
      // Malformed: a blob cut short, bytes after the application, an empty application.
      for (const bad of [made.blob.subarray(0, made.blob.length - 2), Buffer.concat([made.blob, Buffer.from([0])])]) {
        assert.ok(ssh2.utils.parseKey(`${made.type} ${bad.toString('base64')}`) instanceof Error);
      }
      assert.ok(ssh2.utils.parseKey(token(kind, '').line) instanceof Error);
    });

    test(`security-keys: an ${kind}-sk signature holds as OpenSSH checks it: the token touched, for its application, whole`, () => {
      const made = token(kind);
      const key = ssh2.utils.parseKey(made.line) as SkKey;
      const message = randomBytes(100);
      assert.equal(key.verify(message, made.sign(message, 0x01, 7)), true);
      assert.equal(key.verify(message, made.sign(message, 0x05, 7), undefined, { userVerification: true }), true);
      // No user presence: refused, unless the key's line says no-touch-required.
      assert.equal(key.verify(message, made.sign(message, 0x00, 7)), false);
      assert.equal(key.verify(message, made.sign(message, 0x00, 7), undefined, { userPresence: false }), true);
      // verify-required: the user-verified flag (a PIN, a fingerprint) must be there.
      assert.equal(key.verify(message, made.sign(message, 0x01, 7), undefined, { userVerification: true }), false);
      // Signed for another application, or another message; the flags or the counter changed after signing.
      assert.equal(key.verify(message, made.sign(message, 0x01, 7, 'https://example.com')), false);
      assert.equal(key.verify(randomBytes(100), made.sign(message, 0x01, 7)), false);
      const good = made.sign(message, 0x01, 7);
      const changed = Buffer.from(good);
      changed[changed.length - 1] ^= 1;
      assert.equal(key.verify(message, changed), false);
      const unflagged = Buffer.from(good);
      unflagged[unflagged.length - 5] = 0x05;
      assert.equal(key.verify(message, unflagged), false);
      // Truncated anywhere, or with a byte more: refused, never thrown.
      for (let cut = 0; cut < good.length; cut += 3) assert.equal(key.verify(message, good.subarray(0, cut)), false);
      assert.equal(key.verify(message, Buffer.concat([good, Buffer.from([0])])), false);
      for (let i = 0; i < 200; i++) assert.equal(key.verify(message, randomBytes(i)), false);
    });
  }
});

describe('the ssh2 patch: certificates of FIDO security keys', { timeout: 60_000 }, () => {
  // OpenSSH's own software token (sk-dummy, .ci/sk-dummy), a key made with it, and a certificate of it from a CA.
  const skDummy = join(process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps', 'sk-dummy', 'sk-dummy.so');
  const dir = temporaryDir();
  const seen: { algo: string; signature?: Buffer }[] = [];
  let port = 0;
  const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
    connection.on('error', () => {});
    connection.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      seen.push({ algo: ctx.key.algo, signature: ctx.signature });
      // The certificate alone (OpenSSH offers the plain key first). Its signature as ssh2 hands it over: for a
      // security key, the 64 bytes of Ed25519's, then flags and counter.
      if (!ctx.key.algo.includes('-cert-')) return ctx.reject(['publickey']);
      return ctx.signature ? (ctx.signature.length === 69 ? ctx.accept() : ctx.reject()) : ctx.accept();
    });
    connection.on('session', (accept) => accept().on('exec', (acceptExec) => {
      const channel = acceptExec();
      channel.exit(0);
      channel.end();
    }));
  });
  before(async () => {
    assert.ok(existsSync(skDummy), `no ${skDummy}: run sudo bash .ci/sk-dummy once`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'ca')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519-sk', '-w', skDummy, '-N', '', '-f', join(dir, 'key')]);
    execFileSync('ssh-keygen', ['-q', '-s', join(dir, 'ca'), '-I', 'sk', '-n', 'alice', join(dir, 'key.pub')]);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as { port: number }).port;
  });
  after(() => server.close());

  test('security-key-certificates: a login with a certificate of a security key is named as OpenSSH names it, and its signature read as the key\'s', async () => {
    const ssh = spawn('ssh', [...sshOptions, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
      '-o', `SecurityKeyProvider=${skDummy}`, '-i', join(dir, 'key'), '-p', String(port), 'alice@localhost', 'true'], { stdio: 'ignore' });
    const [status] = await once(ssh, 'close') as [number];
    assert.equal(status, 0, JSON.stringify(seen.map(({ algo, signature }) => ({ algo, length: signature?.length }))));
    assert.deepEqual([...new Set(seen.map(({ algo }) => algo))], ['sk-ssh-ed25519@openssh.com', 'sk-ssh-ed25519-cert-v01@openssh.com']);
  });
});

describe('the ssh2 patch: its cipher binding on Node 26', { timeout: 240_000 }, () => {
  test('crypto-binding-node26: the part applies on its own to a fresh ssh2 1.17.0, as a pull request would (git apply)', () => {
    assert.doesNotMatch(appliedAlone('crypto-binding-node26', 'protocol/crypto/src/binding.cc'), /context->GetIsolate\(\)/);
  });

  // The current LTS, as .ci/today installs it (with its headers), and npm's own node-gyp, as npm hands it to scripts.
  const node26 = join(process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps', 'runtimes', 'node_modules', 'node26');
  const nodeGyp = process.env.npm_config_node_gyp
    ?? join(process.env.npm_execpath ?? '', '..', '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');

  test('crypto-binding-node26: ssh2\'s AES-GCM and ChaCha20-Poly1305 binding compiles against Node 26, and loads there', () => {
    assert.ok(existsSync(join(node26, 'include', 'node', 'node.h')), `no Node 26 under ${node26}: run sudo bash .ci/today once`);
    assert.ok(existsSync(nodeGyp), `no node-gyp at ${nodeGyp}: run this through npm (npm test)`);
    // A copy of this project's ssh2 binding, inside node_modules so that its build finds nan; built for Node 26 there.
    const copy = join(root, 'node_modules', `.conch-steps-binding-${process.pid}`);
    rmSync(copy, { recursive: true, force: true });
    execFileSync('cp', ['-r', join(root, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto'), copy]);
    rmSync(join(copy, 'build'), { recursive: true, force: true });
    try {
      // (npm's own settings may name another Node's headers, nodedir=/usr on Debian's npm: this one wins.)
      const env = { ...process.env, PATH: `${join(node26, 'bin')}:${process.env.PATH}`, npm_config_nodedir: node26 };
      const built = spawnSync(join(node26, 'bin', 'node'), [nodeGyp, 'rebuild', `--nodedir=${node26}`, '--real_openssl_major=3'],
        { cwd: copy, env, encoding: 'utf8' });
      assert.equal(built.status, 0, built.stderr.split('\n').filter((line) => /error/.test(line)).slice(0, 3).join('\n'));
      const loaded = execFileSync(join(node26, 'bin', 'node'), ['-p',
        `Object.keys(require(${JSON.stringify(join(copy, 'build', 'Release', 'sshcrypto.node'))})).sort().join(' ')`], { encoding: 'utf8' });
      assert.match(loaded, /AESGCMCipher/);
      assert.match(loaded, /ChaChaPolyCipher/);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('npm install: ssh2\'s crypto binding, built for the Node that installs it', { timeout: 240_000 }, () => {
  test('a binding built against another Node\'s headers (npm\'s nodedir) is built again by postinstall for this one', () => {
    const node22 = dirname(dirname(todayRuntime('node22/bin/node')));
    const node26 = todayRuntime('node26/bin/node');
    // A project of its own: the patched ssh2 and nan, copied, with the binding built for Node 22 (its own headers).
    const project = temporaryDir();
    mkdirSync(join(project, 'node_modules'));
    for (const name of ['ssh2', 'nan']) execFileSync('cp', ['-r', join(root, 'node_modules', name), join(project, 'node_modules', name)]);
    rmSync(join(project, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build'), { recursive: true, force: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ private: true, dependencies: { ssh2: '1.17.0', nan: '2' } }));
    const tsx = (node: string, args: string[]) => spawnSync(node, ['--import', 'tsx', ...args], { cwd: root, encoding: 'utf8',
      env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}`, npm_config_nodedir: node22 } });
    spawnSync('npm', ['rebuild', 'ssh2'], { cwd: project, encoding: 'utf8',
      env: { ...process.env, PATH: `${join(node22, 'bin')}:${process.env.PATH}`, npm_config_nodedir: node22 } });
    assert.equal(bindingProblem(project, join(node22, 'bin', 'node')), undefined, 'built for Node 22, it loads there');
    // Installed so under Node 26 (npm's nodedir still Node 22's), ssh2 would go on without it, silently.
    assert.match(bindingProblem(project, node26) ?? '', /NODE_MODULE_VERSION|self-register/);

    const ran = tsx(node26, [join(root, 'shared', 'tools', 'crypto-binding.ts'), project]);
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(ran.stdout, /^ssh2's crypto binding does not load in Node v26\.[\d.]+ \(.*\): rebuilding it against .*node26$/m);
    assert.match(ran.stdout, /^ssh2's crypto binding loads in Node v26\.[\d.]+$/m);
    assert.equal(bindingProblem(project, node26), undefined);

    // Once it loads, it is left as it is.
    const again = tsx(node26, [join(root, 'shared', 'tools', 'crypto-binding.ts'), project]);
    assert.equal(again.stdout, `ssh2's crypto binding loads in Node ${spawnSync(node26, ['--version'], { encoding: 'utf8' }).stdout.trim()}\n`);
  });
});

describe('the ssh2 patch: what a server loads', { timeout: 60_000 }, () => {
  test('load-on-use: a server loads no client, agent, SFTP, key generation or bcrypt until used, and each works then', () => {
    // In a process of its own, so that what this file imported does not count.
    const script = `
      const ssh2 = require('ssh2');
      const { bindingAvailable } = require('ssh2/lib/protocol/crypto.js');
      const optional = /ssh2\\/lib\\/(client|agent|keygen|http-agents)\\.js$|ssh2\\/lib\\/protocol\\/SFTP\\.js$|bcrypt-pbkdf\\/index\\.js$/;
      const loaded = () => Object.keys(require.cache).filter((file) => optional.test(file)
        || (bindingAvailable && file.endsWith('poly1305.js'))).map((file) => file.replace(/.*node_modules\\//, '')).sort();
      const server = new ssh2.Server({ hostKeys: [process.env.HOST_KEY] }, () => {});
      const atFirst = loaded();
      const key = ssh2.utils.generateKeyPairSync('ed25519', { passphrase: 'demo', cipher: 'aes256-ctr', rounds: 4 });
      const parsed = ssh2.utils.parseKey(key.private, 'demo');
      const works = {
        client: typeof new ssh2.Client().connect,
        agent: typeof new ssh2.OpenSSHAgent('/nonexistent').getIdentities,
        httpAgent: typeof ssh2.HTTPAgent,
        sftp: ssh2.utils.sftp.OPEN_MODE.READ,
        decrypted: parsed instanceof Error ? parsed.message : parsed.type,
        sameUtils: ssh2.utils === ssh2.utils,
      };
      console.log(JSON.stringify({ atFirst, works, after: loaded() }));
      server.close();
    `;
    const ran = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, HOST_KEY: newHostKey('ed25519') } });
    assert.equal(ran.status, 0, ran.stderr);
    const { atFirst, works, after } = JSON.parse(ran.stdout) as { atFirst: string[]; works: Record<string, unknown>; after: string[] };
    assert.deepEqual(atFirst, []);
    assert.deepEqual(works, { client: 'function', agent: 'function', httpAgent: 'function', sftp: 1, decrypted: 'ssh-ed25519', sameUtils: true });
    assert.deepEqual(after, ['bcrypt-pbkdf/index.js', 'ssh2/lib/agent.js', 'ssh2/lib/client.js', 'ssh2/lib/http-agents.js',
      'ssh2/lib/keygen.js', 'ssh2/lib/protocol/SFTP.js']);
  });
});

/** What a server made with `algorithms` says in its extension info to OpenSSH 9.2 (-v prints it before any login). */
async function extensionInfo(algorithms: Record<string, unknown>): Promise<string> {
  const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')], algorithms } as ssh2.ServerConfig, (connection) => {
    connection.on('error', () => {});
    connection.on('authentication', (ctx) => ctx.reject());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const port = (server.address() as { port: number }).port;
    const child = guarded(spawn('ssh', [...sshOptions, '-v', '-o', 'BatchMode=yes', '-p', String(port), 'anyone@127.0.0.1', 'true']));
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdin.end();
    await once(child, 'close');
    return stderr;
  } finally {
    server.close();
  }
}

describe('the ssh2 patch: the extension info a server sends', { timeout: 60_000 }, () => {
  const namedBy = async (algorithms: Record<string, unknown>) => /server-sig-algs=<([^>]*)>/.exec(await extensionInfo(algorithms))?.[1];

  test('server-sig-algs: by default, each of ssh2\'s names apart (ssh2 ran two together, so rsa-sha2-512 was named nowhere)', async () => {
    assert.equal(await namedBy({}), 'ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,'
      + 'rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-dss');
  });

  test('server-sig-algs: algorithms.serverSigAlgs names what the server takes, in its order; a bad list is refused as it is made', async () => {
    const names = ['sk-ssh-ed25519@openssh.com', 'ssh-ed25519', 'rsa-sha2-256-cert-v01@openssh.com'];
    assert.equal(await namedBy({ serverSigAlgs: names }), names.join(','));
    for (const bad of [[], ['a,b'], [''], 'ssh-ed25519', [7]]) {
      assert.throws(() => new ssh2.Server({ hostKeys: [newHostKey('ed25519')], algorithms: { serverSigAlgs: bad } } as unknown as ssh2.ServerConfig),
        /algorithms\.serverSigAlgs must be a non-empty array of algorithm names/, JSON.stringify(bad));
    }
  });
});

describe('the ssh2 patch: ping@openssh.com', { timeout: 60_000 }, () => {
  /** Sends SSH2_MSG_PING with `data` from ssh2's client, raw (ssh2 has no call for it: OpenSSH's clients send it). */
  function ping(client: ssh2.Client, data: string): void {
    const proto = (client as unknown as { _protocol: { _packetRW: { write: { allocStart: number; alloc(size: number): Buffer;
      finalize(packet: Buffer): Buffer } }; _cipher: { encrypt(packet: Buffer): void } } })._protocol;
    const bytes = Buffer.from(data);
    const at = proto._packetRW.write.allocStart;
    const packet = proto._packetRW.write.alloc(1 + 4 + bytes.length);
    packet[at] = 192;
    packet.writeUInt32BE(bytes.length, at + 1);
    packet.set(bytes, at + 5);
    proto._cipher.encrypt(proto._packetRW.write.finalize(packet));
  }

  test('ping: a PING after login is answered with a PONG of its data; one before login is not answered at all', async () => {
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = new ssh2.Client();
    client.on('error', () => {});
    const pongs: string[] = [];
    try {
      // Before the login: sent as soon as the keys are in place (the client's first password request comes after it).
      const sentEarly = new Promise<void>((resolve) => client.once('handshake', () => {
        (rawClient(client) as unknown as { _handlers: Record<string, unknown> })._handlers.PONG = (proto: unknown, data: Buffer) => pongs.push(`${data}`);
        ping(client, 'before login');
        resolve();
      }));
      client.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, username: 'anyone', password: 'any' });
      await sentEarly;
      await once(client, 'ready');
      ping(client, 'after login');
      await waitFor('the PONG', () => pongs.length > 0 || undefined);
      await new Promise<void>((resolve) => client.exec('x', () => resolve())); // a round trip more: nothing else came
      assert.deepEqual(pongs, ['after login']);
    } finally {
      client.end();
      server.close();
    }
  });

  test('ping: OpenSSH reads ping@openssh.com, version 0, in the server\'s extension info', async () => {
    assert.match(await extensionInfo({}), /ping@openssh\.com/);
  });

  test('ping: OpenSSH 10.6, typed into a real terminal, hides its keystrokes among PINGs, and each is answered', async () => {
    const said: string[] = [];
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')], debug: (line: string) => said.push(line) }, (connection) => {
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
      connection.on('session', (accept) => {
        const session = accept();
        session.on('pty', (acceptPty) => acceptPty?.());
        // A shell that echoes what is typed, and ends at a q.
        session.on('shell', (acceptShell) => {
          const channel = acceptShell();
          channel.write('> ');
          channel.on('data', (chunk: Buffer) => (chunk.includes('q') ? (channel.exit(0), channel.end()) : channel.write(chunk)));
        });
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const [command, env] = todaysSsh([...sshOptions, '-p', String((server.address() as { port: number }).port), 'anyone@127.0.0.1'], 'any');
    const terminal = new Terminal(command, env);
    try {
      await waitFor('the prompt', () => terminal.screen().at(-1)?.startsWith('>') || undefined);
      for (const key of 'typed') {
        terminal.sendKeys('-l', key);
        await waitFor(`the echo of ${key}`, () => terminal.screen().at(-1)!.endsWith(key) || undefined);
      }
      terminal.sendKeys('-l', 'q');
      await waitFor('ssh to end', () => terminal.exitStatus());
      const pings = said.filter((line) => line.endsWith('Inbound: Received PING')).length;
      assert.ok(pings > 0, 'OpenSSH sent PINGs');
      assert.equal(said.filter((line) => line.endsWith('Outbound: Sending PONG')).length, pings);
    } finally {
      terminal.close();
      server.close();
    }
  });
});

/** The protocol internals the tests below reach: the packet writer, and what the first exchange kept. */
interface KexInternals {
  _packetRW: { write: { allocStart: number; alloc(size: number): Buffer; finalize(packet: Buffer): Buffer } };
  _cipher: { encrypt(packet: Buffer): void };
  _kex: { sessionID: Buffer };
  _initialHostKey?: Buffer;
  _initialHostKeySig?: Buffer;
}
const internals = (client: ssh2.Client) => (client as unknown as { _protocol: KexInternals })._protocol;

/** SSH strings, each its length then its bytes, run together. */
const sshStrings = (...items: Buffer[]) => Buffer.concat(items.flatMap((item) => [Buffer.from([0, 0, 0, 0].map((_, i) =>
  (item.length >>> (24 - 8 * i)) & 255)), item]));

/**
 * Sends a global request `name` with want-reply and `data` from ssh2's client, raw, and resolves with the server's
 * answer: the data of its REQUEST_SUCCESS, or 'failure'.
 */
function globalRequest(client: ssh2.Client, name: string, data: Buffer): Promise<Buffer | 'failure'> {
  const proto = internals(client);
  const at = proto._packetRW.write.allocStart;
  const head = Buffer.concat([sshStrings(Buffer.from(name)), Buffer.from([1])]);
  const packet = proto._packetRW.write.alloc(1 + head.length + data.length);
  packet[at] = 80; // SSH_MSG_GLOBAL_REQUEST
  packet.set(head, at + 1);
  packet.set(data, at + 1 + head.length);
  return new Promise((resolve) => {
    (client as unknown as { _callbacks: ((failed: boolean, data?: Buffer) => void)[] })._callbacks
      .push((failed, answer) => resolve(failed ? 'failure' : answer ?? Buffer.alloc(0)));
    proto._cipher.encrypt(proto._packetRW.write.finalize(packet));
  });
}

/** A server in this process with these host keys that lets anyone in by password; `exec` keeps its channel until EOF. */
async function serverWith(hostKeys: string[], onAuth?: (ctx: ssh2.AuthContext) => void) {
  const server = new ssh2.Server({ hostKeys }, (connection) => {
    connection.on('error', () => {});
    connection.on('authentication', onAuth ?? ((ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password']))));
    connection.on('session', (accept) => accept().on('exec', (acceptExec) => {
      const channel = acceptExec();
      channel.on('data', () => {}).on('end', () => (channel.exit(0), channel.end()));
    }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

/** ssh2's client, logged in by password (or as `config` says), to a server in this process. */
async function loggedIn(port: number, config: Partial<ssh2.ConnectConfig> = {}, early?: (client: ssh2.Client) => void) {
  const client = new ssh2.Client();
  client.on('error', () => {});
  if (early) client.once('handshake', () => early(client));
  client.connect({ host: '127.0.0.1', port, username: 'anyone', password: 'any', ...config });
  await once(client, 'ready');
  return client;
}

const publicLine = (key: string) => {
  const parsed = ssh2.utils.parseKey(key) as ssh2.ParsedKey;
  return `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
};

describe('the ssh2 patch: host keys a client can learn (hostkeys-00, hostkeys-prove-00)', { timeout: 60_000 }, () => {
  const [first, rsa, second] = [newHostKey('ed25519'), newHostKey('rsa'), newHostKey('ed25519')];
  const blobOf = (key: string) => (ssh2.utils.parseKey(key) as ssh2.ParsedKey).getPublicSSH();

  test('hostkeys: after login every host key is told, a second of one type too, and ssh2\'s client finds each proof good', async () => {
    const { server, port } = await serverWith([first, rsa, second]);
    try {
      for (const serverHostKey of ['ssh-ed25519', 'rsa-sha2-256', 'rsa-sha2-512'] as const) {
        const client = new ssh2.Client();
        client.on('error', () => {});
        const told = once(client, 'hostkeys');
        // strictVendor: false, or ssh2's client asks only a server that calls itself OpenSSH.
        client.connect({ host: '127.0.0.1', port, username: 'anyone', password: 'any', strictVendor: false,
          algorithms: { serverHostKey: [serverHostKey] } });
        const [keys] = await told.finally(() => client.end()) as [ssh2.ParsedKey[]];
        assert.deepEqual(keys.map((key) => key.getPublicSSH().toString('base64')),
          [first, rsa, second].map((key) => blobOf(key).toString('base64')), serverHostKey);
      }
    } finally {
      server.close();
    }
  });

  test('hostkeys: OpenSSH 9.2 with UpdateHostKeys, knowing the first Ed25519 key alone, learns the other two', async () => {
    const { server, port } = await serverWith([first, rsa, second]);
    const dir = temporaryDir();
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${publicLine(first)}\n`);
    try {
      writeFileSync(join(dir, 'askpass'), '#!/bin/sh\necho any\n', { mode: 0o700 });
      const child = guarded(spawn('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
        '-o', 'UpdateHostKeys=yes', '-p', String(port), 'anyone@127.0.0.1', 'wait'],
      { env: { ...process.env, SSH_ASKPASS: join(dir, 'askpass'), SSH_ASKPASS_REQUIRE: 'force' }, stdio: ['pipe', 'ignore', 'pipe'] }));
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      // The session lasts until ssh's input ends: long enough for its proof request and the answer.
      const learned = await waitFor('the known_hosts file to grow', () => {
        const lines = readFileSync(knownHosts, 'utf8').trim().split('\n');
        return lines.length === 3 ? lines : undefined;
      });
      child.stdin.end();
      const [status] = await once(child, 'close');
      assert.equal(status, 0, stderr);
      assert.deepEqual(learned.map((line) => line.split(' ').slice(1).join(' ')).sort(), [first, rsa, second].map(publicLine).sort());
    } finally {
      server.close();
    }
  });

  test('hostkeys: a proof is refused before login, for a key the server lacks, for more keys than it has, malformed, and a second time', async () => {
    const { server, port } = await serverWith([first, second]);
    let client: ssh2.Client | undefined;
    try {
      let early: Promise<Buffer | 'failure'> | undefined;
      client = await loggedIn(port, {}, (c) => {
        // ssh2's client would ask for its own proofs once told the keys, and a connection gets one answer.
        (c as unknown as { _protocol: { _handlers: Record<string, unknown> } })._protocol._handlers.GLOBAL_REQUEST = () => {};
        early = globalRequest(c, 'hostkeys-prove-00@openssh.com', sshStrings(blobOf(first)));
      });
      assert.equal(await early, 'failure', 'before login');
      const other = blobOf(newHostKey('ed25519'));
      assert.equal(await globalRequest(client, 'hostkeys-prove-00@openssh.com', sshStrings(blobOf(first), other)), 'failure', 'a key it lacks');
      assert.equal(await globalRequest(client, 'hostkeys-prove-00@openssh.com', sshStrings(blobOf(first), blobOf(second), blobOf(first))),
        'failure', 'more keys than it has');
      assert.equal(await globalRequest(client, 'hostkeys-prove-00@openssh.com', Buffer.from([0, 0, 1, 0, 1, 2])), 'failure', 'malformed');
      const proof = await globalRequest(client, 'hostkeys-prove-00@openssh.com', sshStrings(blobOf(second)));
      assert.ok(Buffer.isBuffer(proof), 'a good request, the first');
      // The proof: a signature by the second key of the name, the session and the key.
      const session = internals(client)._kex.sessionID;
      const signature = proof.subarray(4 + 4 + 11 + 4);
      const data = sshStrings(Buffer.from('hostkeys-prove-00@openssh.com'), session, blobOf(second));
      assert.equal((ssh2.utils.parseKey(second) as ssh2.ParsedKey).verify(data, signature), true);
      assert.equal(await globalRequest(client, 'hostkeys-prove-00@openssh.com', sshStrings(blobOf(second))), 'failure', 'a second time');
    } finally {
      client?.end();
      server.close();
    }
  });

});

/** A server in this process that lets in the holder of `userKey`, checking each signature, and counts what it was asked. */
async function keyServer(hostKey: string, userKey: ssh2.ParsedKey) {
  const asked: { signed: boolean; blob?: Buffer }[] = [];
  const server = new ssh2.Server({ hostKeys: [hostKey] }, (connection) => {
    connection.on('error', () => {});
    connection.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || !ctx.key.data.equals(userKey.getPublicSSH())) return ctx.reject(['publickey']);
      asked.push({ signed: !!ctx.signature, blob: ctx.blob });
      if (!ctx.signature) return ctx.accept();
      return userKey.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject(['publickey']);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, asked, port: (server.address() as { port: number }).port };
}

/** Whether ssh2's client logs in to `port` with `config`; `early` runs once the keys are exchanged, before any login. */
async function logsIn(port: number, config: Partial<ssh2.ConnectConfig>, early?: (client: ssh2.Client) => void): Promise<true | string> {
  const client = new ssh2.Client();
  if (early) client.once('handshake', () => early(client));
  const result = new Promise<true | string>((resolve) => {
    client.on('ready', () => resolve(true)).on('error', (err) => resolve(err.message)).on('close', () => resolve('closed'));
  });
  client.connect({ host: '127.0.0.1', port, username: 'anyone', ...config });
  return result.finally(() => client.end());
}

describe('the ssh2 patch: publickey-hostbound-v00, a login bound to the server\'s host key', { timeout: 60_000 }, () => {
  const hostKey = newHostKey('ed25519');
  const dir = temporaryDir();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
  const userKey = ssh2.utils.parseKey(readFileSync(join(dir, 'key'))) as ssh2.ParsedKey;
  const method = Buffer.from('publickey-hostbound-v00@openssh.com');

  test('publickey-hostbound: OpenSSH 9.2 reads it in the extension info, version 0, and logs in by it', async () => {
    const { server, asked, port } = await keyServer(hostKey, userKey);
    try {
      const child = guarded(spawn('ssh', [...sshOptions, '-vvv', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', join(dir, 'key'),
        '-p', String(port), 'anyone@127.0.0.1', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] }));
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      await once(child, 'close');
      assert.match(stderr, /publickey-hostbound@openssh\.com=<0>/);
      assert.match(stderr, /using publickey-hostbound-v00@openssh\.com with ED25519/);
      assert.match(stderr, /Authenticated to 127\.0\.0\.1 .* using "publickey"/);
      assert.ok(asked.some(({ signed, blob }) => signed && blob!.includes(method)), 'the signed login was hostbound');
    } finally {
      server.close();
    }
  });

  test('publickey-hostbound: ssh2\'s client signs such a login, naming the host key of the first exchange', async () => {
    const { server, asked, port } = await keyServer(hostKey, userKey);
    try {
      assert.equal(await logsIn(port, { privateKey: readFileSync(join(dir, 'key')) }), true);
      const [signed] = asked.filter((each) => each.signed);
      // What it signed ends with the method, the key, then the server's host key.
      const hostBlob = (ssh2.utils.parseKey(hostKey) as ssh2.ParsedKey).getPublicSSH();
      assert.ok(signed!.blob!.includes(method));
      assert.ok(signed!.blob!.subarray(-hostBlob.length).equals(hostBlob));
    } finally {
      server.close();
    }
  });

  test('publickey-hostbound: a login that names another host key ends the connection, and no listener is asked to sign it off', async () => {
    const { server, asked, port } = await keyServer(hostKey, userKey);
    try {
      const other = (ssh2.utils.parseKey(newHostKey('ed25519')) as ssh2.ParsedKey).getPublicSSH();
      const result = await logsIn(port, { privateKey: readFileSync(join(dir, 'key')) }, (client) => (internals(client)._initialHostKey = other));
      assert.notEqual(result, true);
      assert.deepEqual(asked.filter((each) => each.signed), []);
    } finally {
      server.close();
    }
  });
});

describe('the ssh2 patch: session-bind, for agent keys restricted to hosts (ssh-add -h)', { timeout: 60_000 }, () => {
  const dir = temporaryDir();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
  const userKey = ssh2.utils.parseKey(readFileSync(join(dir, 'key'))) as ssh2.ParsedKey;
  const [inner, other] = [newHostKey('ed25519'), newHostKey('ed25519')];
  // The hosts the user knows by name, as ssh-add -h looks them up.
  writeFileSync(join(dir, 'known_hosts'), `inner ${publicLine(inner)}\nother ${publicLine(other)}\n`);

  /** A real ssh-agent of the test's own, holding the key restricted to `hosts` (ssh-add -h each); stopped after `use`. */
  async function withAgent<T>(hosts: string[], use: (socket: string) => Promise<T>): Promise<T> {
    const socket = join(temporaryDir(), 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      await waitFor('the agent', () => existsSync(socket) || undefined);
      execFileSync('ssh-add', ['-q', '-H', join(dir, 'known_hosts'), ...hosts.flatMap((host) => ['-h', host]), join(dir, 'key')],
        { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
      return await use(socket);
    } finally {
      agent.kill();
    }
  }

  test('session-bind: a key restricted to the server\'s host logs in through the agent; the agent was told the host first', async () => {
    const { server, port } = await keyServer(inner, userKey);
    try {
      assert.equal(await withAgent(['inner'], (agent) => logsIn(port, { agent })), true);
    } finally {
      server.close();
    }
  });

  test('session-bind: a key restricted to another host signs nothing for this one', async () => {
    const { server, asked, port } = await keyServer(inner, userKey);
    try {
      assert.notEqual(await withAgent(['other'], (agent) => logsIn(port, { agent })), true);
      assert.deepEqual(asked.filter((each) => each.signed), []);
    } finally {
      server.close();
    }
  });

  test('session-bind: an answer to the bind that carries more than its type is read to its end, not as the next answer', async () => {
    // An agent whose SUCCESS holds a whole signature answer, then its real one: the signature is the real one.
    const answer = (type: number, body: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0].map((_, i) => ((1 + body.length) >>> (24 - 8 * i)) & 255)),
      Buffer.from([type]), body]);
    const signatureBody = (text: string) => sshStrings(sshStrings(Buffer.from('ssh-ed25519'), Buffer.from(text)));
    const protocol = new ssh2.AgentProtocol(true);
    protocol.resume(); // what it would send the agent
    (protocol as unknown as { sessionBind(...args: unknown[]): void }).sessionBind(Buffer.from('host key'), Buffer.from('session'),
      Buffer.from('signature'), false);
    const signed = new Promise<string>((resolve) => protocol.sign(userKey, Buffer.from('data'), {},
      (err, signature) => resolve(err ? `error: ${err.message}` : `${signature}`)));
    protocol.write(Buffer.concat([answer(6, answer(14, signatureBody('smuggled'))), answer(14, signatureBody('real'))]));
    assert.equal(await signed, 'real');
  });

  test('session-bind: a binding with a bad signature is refused by the agent, and the restricted key signs nothing', async () => {
    const { server, asked, port } = await keyServer(inner, userKey);
    try {
      const forged = (client: ssh2.Client) => {
        const proto = internals(client);
        const signature = Buffer.from(proto._initialHostKeySig!);
        signature[signature.length - 1]! ^= 1;
        proto._initialHostKeySig = signature;
      };
      assert.notEqual(await withAgent(['inner'], (agent) => logsIn(port, { agent }, forged)), true);
      assert.deepEqual(asked.filter((each) => each.signed), []);
    } finally {
      server.close();
    }
  });
});

describe('the ssh2 patch: what a server has sent and the client not yet read, bounded', { timeout: 60_000 }, () => {
  test('channel-output-backpressure: a channel\'s writes wait while 4 MiB wait in the socket, whatever the window', async () => {
    // A client that gives a window of 4 GiB, then reads its socket no more. Unpatched, a channel's writes went
    // straight to the socket, which kept them all: step 14 running cat /dev/zero grew by some 230 MiB a second.
    const connections: Connection[] = [];
    let produced = 0;
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
      connections.push(connection);
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
      connection.on('session', (accept) => accept().on('exec', (acceptExec) => {
        const channel = acceptExec();
        channel.on('error', () => {});
        // An endless output, at the pace the channel takes it.
        new Readable({ read() { produced += 65536; this.push(Buffer.alloc(65536)); } }).pipe(channel);
      }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = await loggedIn((server.address() as { port: number }).port);
    try {
      const proto = rawClient(client);
      const id = await rawSession(client, 2 ** 32 - 1); // a window of 4 GiB
      (client as unknown as { _sock: import('node:net').Socket })._sock.pause(); // read no more
      proto.exec(id, 'endless', false);
      const serverSocket = () => (connections[0] as unknown as { _sock: import('node:net').Socket })._sock;
      await waitFor('4 MiB waiting in the server\'s socket', () => serverSocket().writableLength > 4 * 1024 * 1024 || undefined);
      const then = produced;
      // A second in which the output should stay where it is: the client reads nothing.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(produced - then <= 1024 * 1024, `${((produced - then) / 1048576).toFixed(0)} MiB more produced`);
      assert.ok(serverSocket().writableLength <= 5 * 1024 * 1024, `${(serverSocket().writableLength / 1048576).toFixed(0)} MiB waited`);
    } finally {
      client.destroy();
      server.close();
    }
  });

  test('ed25519-keygen-leading-zero: a key pair whose public key begins with a zero byte keeps all 32 bytes; OpenSSH reads it', () => {
    // One Ed25519 key in 256 begins with a zero byte; ssh2 took every leading zero off, and wrote a key of 31 bytes.
    const dir = temporaryDir();
    try {
      let pair: ReturnType<typeof ssh2.utils.generateKeyPairSync> | undefined;
      for (let i = 0; i < 5000 && !pair; i++) {
        const made = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'zero' });
        const blob = Buffer.from(made.public.split(' ')[1]!, 'base64'); // "ssh-ed25519" and its length, then the key's
        if (blob.readUInt32BE(15) !== 32 || blob[19] === 0) pair = made; // a key cut short, or one that begins with zero
      }
      assert.ok(pair, 'no key in 5000 began with a zero byte'); // one in 256 does
      const blob = Buffer.from(pair.public.split(' ')[1]!, 'base64');
      assert.equal(blob.readUInt32BE(15), 32);
      const parsed = ssh2.utils.parseKey(pair.private);
      assert.ok(!(parsed instanceof Error), String(parsed));
      assert.ok(parsed.verify(Buffer.from('data'), parsed.sign(Buffer.from('data'))));
      writeFileSync(join(dir, 'id'), pair.private, { mode: 0o600 });
      assert.equal(execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'id')], { encoding: 'utf8' }).trim(), pair.public.trim());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('read-per-turn: 12 MB of requests sent at once are handled about 64 KiB a turn of the event loop, all of them in the end', async () => {
    // Unpatched, each turn handled all the connection had in its socket, megabytes, every other connection waiting.
    const perTurn: number[] = [0];
    let turns = true;
    const turn = () => turns && (perTurn.push(0), setImmediate(turn));
    setImmediate(turn);
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
      connection.on('session', (accept) => accept().on('env', (acceptEnv, reject) => {
        perTurn[perTurn.length - 1]! += 1;
        const until = performance.now() + 0.2; // a request that costs some work, so that the socket fills meanwhile
        while (performance.now() < until);
        reject?.();
      }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = await loggedIn((server.address() as { port: number }).port);
    try {
      const id = await rawSession(client, 2 ** 20);
      const value = 'x'.repeat(30_000);
      for (let i = 0; i < 400; i++) rawClient(client).env(id, `LC_${i}`, value, false);
      await waitFor('all 400 handled', () => perTurn.reduce((sum, each) => sum + each) === 400 || undefined);
      // 64 KiB, and the chunk that went past it: five requests of 30 kB at most.
      assert.ok(Math.max(...perTurn) <= 5, `${Math.max(...perTurn)} requests of 30 kB in one turn`);
    } finally {
      turns = false;
      client.destroy();
      server.close();
    }
  });

  test('output-backpressure: PINGs from a client that never reads the PONGs are read no more past 4 MiB waiting', async () => {
    const connections: Connection[] = [];
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
      connections.push(connection);
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = await loggedIn((server.address() as { port: number }).port);
    try {
      const clientSocket = (client as unknown as { _sock: import('node:net').Socket })._sock;
      const serverSocket = () => (connections[0] as unknown as { _sock: import('node:net').Socket })._sock;
      clientSocket.pause(); // the PONGs are never read
      const proto = internals(client);
      const data = sshStrings(Buffer.alloc(32_000, 0x41));
      let most = 0;
      // 32 MiB, each MiB once the client's socket has taken the last: unpatched, the server read and answered all
      // of it, and the answers waited in its memory. Patched, it stops reading, and the client's sending stalls.
      for (let sent = 0; sent < 32 * 1024 * 1024 && !serverSocket().isPaused(); sent += data.length) {
        const at = proto._packetRW.write.allocStart;
        const packet = proto._packetRW.write.alloc(1 + data.length);
        packet[at] = 192; // SSH2_MSG_PING
        packet.set(data, at + 1);
        proto._cipher.encrypt(proto._packetRW.write.finalize(packet));
        if (clientSocket.writableLength > 1024 * 1024) {
          // Until the client's socket has drained, or the server has stopped reading (then it never will).
          await new Promise<void>((resolve) => {
            const done = () => (clearInterval(poll), clientSocket.off('drain', done), resolve());
            const poll = setInterval(() => serverSocket().isPaused() && done(), 10);
            clientSocket.once('drain', done);
          });
        }
        most = Math.max(most, serverSocket().writableLength);
      }
      assert.ok(serverSocket().isPaused(), 'the server stopped reading');
      assert.ok(most <= 5 * 1024 * 1024, `${(most / 1048576).toFixed(1)} MiB waited in the server`);
    } finally {
      client.destroy();
      server.close();
    }
  });
});

describe('the ssh2 patch: a channel of a lost connection closes, read or not', { timeout: 60_000 }, () => {
  /** A server whose one exec session's channel is handed to `take`; each side's channel, and the sockets. */
  async function session(take: (channel: ServerChannel) => void) {
    const connections: Connection[] = [];
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')] }, (connection) => {
      connections.push(connection);
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
      connection.on('session', (accept) => accept().on('exec', (acceptExec) => take(acceptExec())));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = await loggedIn((server.address() as { port: number }).port);
    const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.exec('anything', (err, c) => (err ? reject(err) : resolve(c))));
    channel.on('error', () => {});
    const socketOf = (side: unknown) => (side as { _sock: import('node:net').Socket })._sock;
    return { server, client, channel, clientSocket: socketOf(client), serverSocket: () => socketOf(connections[0]) };
  }

  test('close-when-connection-lost: a server\'s channel with data its paused reader never read closes as the client vanishes', async () => {
    let serverChannel: ServerChannel | undefined;
    const { server, client, channel, clientSocket } = await session((c) => (serverChannel = c.pause()));
    let closed = false;
    try {
      const taken = await waitFor('the server\'s channel', () => serverChannel);
      taken.on('close', () => (closed = true));
      channel.write(Buffer.alloc(64 * 1024, 0x61));
      await waitFor('the data to wait, unread, in the server\'s channel', () => taken.readableLength >= 64 * 1024 || undefined);
      clientSocket.destroy();
      // Unpatched, it waited for an 'end' that only reading would bring: a program fed by a pipe that it never read
      // (step 14's) was never hung up, for as long as the server ran.
      await waitFor('the server\'s channel to close', () => closed || undefined);
    } finally {
      client.destroy();
      server.close();
    }
  });

  test('close-when-connection-lost: a client\'s channel whose reader is paused closes as the server goes; one that reads gets every byte first', async () => {
    const channels: ServerChannel[] = [];
    const { server, client, channel, serverSocket } = await session((c) => {
      channels.push(c);
      c.write(Buffer.alloc(64 * 1024, 0x62));
    });
    const reading = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.exec('anything', (err, c) => (err ? reject(err) : resolve(c))));
    reading.on('error', () => {});
    try {
      let closed = false;
      let read = 0;
      let readAtClose = -1;
      channel.pause().on('close', () => (closed = true));
      reading.on('data', (data: Buffer) => (read += data.length)).on('close', () => (readAtClose = read));
      await waitFor('the data to wait, unread, in the client\'s channel', () => channel.readableLength >= 64 * 1024 || undefined);
      await waitFor('the other channel to read it', () => read >= 64 * 1024 || undefined);
      serverSocket().destroy();
      await waitFor('the paused channel to close', () => closed || undefined);
      await waitFor('the reading channel to close', () => readAtClose >= 0 || undefined);
      assert.equal(readAtClose, 64 * 1024);
    } finally {
      client.destroy();
      server.close();
    }
  });
});

describe('the ssh2 patch: the window a server gives its channels, settable', { timeout: 60_000 }, () => {
  /** A server with `config`, whose exec channels are paused and handed to `take`; a client logged in to it. */
  async function serving(config: Partial<ssh2.ServerConfig>, take: (channel: ServerChannel) => void) {
    const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')], ...config }, (connection) => {
      connection.on('error', () => {});
      connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
      connection.on('session', (accept) => accept().on('exec', (acceptExec) => take(acceptExec().pause())));
      connection.on('tcpip', (accept) => take(accept().pause()));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { server, client: await loggedIn((server.address() as { port: number }).port) };
  }
  const windowOf = (channel: ssh2.ClientChannel) => (channel as unknown as { outgoing: { window: number } }).outgoing.window;

  test('channel-window-size: channelWindow is each channel\'s window, and all a paused reader is made to hold; 2 MiB without it', async () => {
    for (const [config, window] of [[{ channelWindow: 64 * 1024 }, 64 * 1024], [{}, 2 * 1024 * 1024]] as const) {
      const taken: ServerChannel[] = [];
      const { server, client } = await serving(config, (channel) => taken.push(channel));
      try {
        const session = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
          client.exec('anything', (err, c) => (err ? reject(err) : resolve(c))));
        const forward = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
          client.forwardOut('127.0.0.1', 1, '127.0.0.1', 2, (err, c) => (err ? reject(err) : resolve(c))));
        assert.deepEqual([windowOf(session), windowOf(forward)], [window, window]);
        // A reader that never reads: the client sends while the window lets it, and then waits.
        session.write(Buffer.alloc(4 * window, 0x61));
        const [channel] = await waitFor('the server\'s channel', () => (taken.length === 2 ? taken : undefined));
        // Once the window the server gave is all used, what it holds is all the client could send.
        const left = () => (channel as unknown as { incoming: { window: number } }).incoming.window;
        await waitFor('the window to be used up', () => (left() === 0 || undefined));
        // Unpatched: 2 MiB given, and up to 4 MiB held; the setting was ignored.
        assert.ok(channel!.readableLength <= 1.5 * window, `${channel!.readableLength} bytes held for a window of ${window}`);
        assert.ok(channel!.readableLength >= window / 2, `${channel!.readableLength} bytes held for a window of ${window}`);
      } finally {
        client.destroy();
        server.close();
      }
    }
  });

  test('channel-window-size: SFTP, on both sides, moves more than a window each way with channelWindow set and without', async () => {
    const { OK, EOF } = ssh2.utils.sftp.STATUS_CODE;
    for (const config of [{ channelWindow: 64 * 1024 }, {}]) {
      // An SFTP server of one file in memory: enough for ssh2's writeFile and readFile.
      let file = Buffer.alloc(0);
      const server = new ssh2.Server({ hostKeys: [newHostKey('ed25519')], ...config }, (connection) => {
        connection.on('error', () => {});
        connection.on('authentication', (ctx) => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
        // Each request waits for its answer: no Nagle delay on either side (@types/ssh2 lacks the server's setNoDelay).
        (connection as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
        connection.on('session', (accept) => accept().on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          sftp.on('OPEN', (id) => sftp.handle(id, Buffer.from('the file')));
          sftp.on('WRITE', (id, handle, offset, data) => {
            if (offset + data.length > file.length) file = Buffer.concat([file, Buffer.alloc(offset + data.length - file.length)]);
            data.copy(file, offset);
            sftp.status(id, OK);
          });
          sftp.on('READ', (id, handle, offset, length) => (offset >= file.length ? sftp.status(id, EOF)
            : sftp.data(id, file.subarray(offset, offset + length))));
          sftp.on('FSTAT', (id) => sftp.attrs(id, { mode: 0o100644, uid: 0, gid: 0, size: file.length, atime: 0, mtime: 0 }));
          sftp.on('CLOSE', (id) => sftp.status(id, OK));
        }));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const client = await loggedIn((server.address() as { port: number }).port);
      client.setNoDelay(true);
      try {
        const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
        // 5 MiB: past the 2 MiB window of either side, so each must adjust its window, again and again.
        const sent = randomBytes(5 * 1024 * 1024);
        await new Promise<void>((resolve, reject) => sftp.writeFile('up', sent, (err) => (err ? reject(err) : resolve())));
        assert.ok(file.equals(sent), `${JSON.stringify(config)}: ${file.length} bytes came`);
        const back = await new Promise<Buffer>((resolve, reject) => sftp.readFile('up', (err, b) => (err ? reject(err) : resolve(b))));
        assert.ok(back.equals(sent), `${JSON.stringify(config)}: ${back.length} bytes came back`);
      } finally {
        client.destroy();
        server.close();
      }
    }
  });

  test('channel-window-size: a window under 1 KiB or past 2^32-1, or not a whole number, is refused when the server is made', () => {
    for (const channelWindow of [0, 1023, 2 ** 32, 65536.5, Number.NaN]) {
      assert.throws(() => new ssh2.Server({ hostKeys: [newHostKey('ed25519')], channelWindow } as ssh2.ServerConfig),
        /channelWindow must be an integer from 1024 to 2\^32-1/, String(channelWindow));
    }
  });
});

describe('the patch as a series of parts (shared/patches/)', { timeout: 120_000 }, () => {
  test('each part applies in order to a fresh ssh2 1.17.0, and together they give the ssh2 installed here', () => {
    const parts = patchParts();
    assert.ok(parts.length >= 10, `${parts.length} parts`);
    const { dir, status, output } = withParts(parts.length);
    try {
      assert.equal(status, 0, output);
      for (const [i, { name }] of parts.entries()) assert.match(output, new RegExp(`\\(${i + 1} ${name}\\) ✔`));
      const lib = (base: string) => readdirSync(join(base, 'lib'), { recursive: true, encoding: 'utf8' })
        .filter((file) => file.endsWith('.js') && !file.includes('build/')).sort();
      const installed = join(root, 'node_modules', 'ssh2');
      const made = join(dir, 'node_modules', 'ssh2');
      assert.deepEqual(lib(made), lib(installed));
      for (const file of lib(installed)) {
        assert.ok(readFileSync(join(made, 'lib', file)).equals(readFileSync(join(installed, 'lib', file))), file);
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('every part has tests named after it', () => {
    const titles = ['ssh2-patch.test.ts', 'pq-kex.test.ts'].map((file) => readFileSync(join(root, 'test', file), 'utf8')).join('\n');
    const untested = patchParts().filter(({ name }) => !titles.includes(`('${name}: `));
    assert.deepEqual(untested, []);
  });
});
