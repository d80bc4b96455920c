// Step 12, the SFTP server, driven by OpenSSH's sftp and scp, then attacked through ssh2's client.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { peakDuring, residentMiB } from './hostile.ts';
import { count, guarded, logged, quiet, ssh2Login, sshEnv, sshOptions, temporaryDir, useStep, waitFor } from './helpers.ts';

const { STATUS_CODE } = ssh2.utils.sftp;

const home = temporaryDir();
const alice = join(home, 'alice');
mkdirSync(alice, { mode: 0o700 }); // as the step makes it at alice's first SFTP session

/** Runs OpenSSH's sftp or scp (ARGS after the options) as alice, in `cwd`; resolves with what it printed. */
async function client(program: 'sftp' | 'scp', port: number, args: string[], cwd: string, input = '') {
  // sftp -b turns on BatchMode, which turns off SSH_ASKPASS: turned on again for the password.
  const child = guarded(spawn(program, [...sshOptions, '-o', 'BatchMode=no', '-P', String(port), ...args], {
    cwd, env: { ...process.env, ...sshEnv('wonderland') }, stdio: ['pipe', 'pipe', 'pipe'],
  }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(input);
  const [status] = await once(child, 'close');
  return { stdout, stderr: stderr.replace(/^Warning: Permanently added .*\n/gm, ''), status: status as number };
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

describe('step 12: sftp and scp', { timeout: 300_000 }, () => {
  const step = useStep('12-sftp-server.ts', { env: { SFTP_HOME: home } });

  test('sftp -b: put, ls -l, mkdir, rename, chmod, get, resume, rm, rmdir, and errors sftp can print', async () => {
    const work = temporaryDir();
    writeFileSync(join(work, 'hello.txt'), 'hello\n');
    const whole = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    writeFileSync(join(work, 'part.bin'), whole);
    writeFileSync(join(work, 'first-third.bin'), whole.subarray(0, 100_000));
    writeFileSync(join(work, 'part-again.bin'), whole.subarray(0, 100_000));
    const batch = [
      'put hello.txt', 'mkdir docs', 'rename hello.txt docs/hello.txt', 'chmod 600 docs/hello.txt', 'ls -l docs',
      'ls -l docs/hello.txt',
      'get docs/hello.txt back.txt', 'put first-third.bin part.bin', 'reput part.bin', 'reget part.bin part-again.bin',
      '-get missing.txt', '-mkdir docs', '-rmdir docs', 'rm docs/hello.txt', 'rmdir docs', 'rm part.bin', 'ls',
    ].join('\n');
    const result = await client('sftp', step().port, ['-b', '-', 'alice@localhost'], work, `${batch}\n`);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^-rw------- +1 alice +alice +6 \w{3} [ \d]\d \d\d:\d\d hello\.txt$/m);
    // A file's own line comes from STAT, which sftp formats itself (owner as a number).
    assert.match(result.stdout, /^sftp> ls -l docs\/hello\.txt\n-rw------- +\? +\d+ +\d+ +6 .* docs\/hello\.txt$/m);
    assert.equal(readFileSync(join(work, 'back.txt'), 'utf8'), 'hello\n');
    assert.deepEqual(readFileSync(join(work, 'part-again.bin')), whole);
    assert.match(result.stdout, /^sftp> reput part\.bin$/m);
    assert.match(result.stderr, /File "\/missing\.txt" not found\./);
    // sftp prints its own words for a status (a failure is "Failure"), not the server's message.
    assert.match(result.stderr, /remote mkdir "\/docs": Failure/);
    assert.match(result.stderr, /remote rmdir "\/docs": Failure/);
    assert.deepEqual(readdirSync(alice), []);
  });

  test('scp and scp -r, both ways', async () => {
    const work = temporaryDir();
    mkdirSync(join(work, 'tree', 'sub'), { recursive: true });
    writeFileSync(join(work, 'tree', 'a.txt'), 'a\n');
    writeFileSync(join(work, 'tree', 'sub', 'b.txt'), 'b\n');
    writeFileSync(join(work, 'one.txt'), 'one\n');
    for (const args of [['one.txt', 'alice@localhost:'], ['-r', 'tree', 'alice@localhost:'],
      ['alice@localhost:one.txt', 'one-back.txt'], ['-r', 'alice@localhost:tree', 'tree-back']]) {
      const result = await client('scp', step().port, args, work);
      assert.equal(result.status, 0, `scp ${args.join(' ')}: ${result.stderr}`);
    }
    assert.equal(readFileSync(join(alice, 'tree', 'sub', 'b.txt'), 'utf8'), 'b\n');
    assert.equal(readFileSync(join(work, 'one-back.txt'), 'utf8'), 'one\n');
    assert.equal(readFileSync(join(work, 'tree-back', 'sub', 'b.txt'), 'utf8'), 'b\n');
    assert.equal(readFileSync(join(work, 'tree-back', 'a.txt'), 'utf8'), 'a\n');
  });

  test('200 MiB put and get, with the same SHA-256', async () => {
    const work = temporaryDir();
    const big = join(work, 'big.bin');
    await new Promise<void>((resolve, reject) => {
      const writer = spawn('head', ['-c', String(200 * 1024 * 1024), '/dev/urandom'], { stdio: ['ignore', 'pipe', 'inherit'] });
      writer.stdout.pipe(createWriteStream(big)).on('finish', resolve).on('error', reject);
    });
    const result = await client('sftp', step().port, ['-b', '-', 'alice@localhost'], work, 'put big.bin\nget big.bin big-back.bin\nrm big.bin\n');
    assert.equal(result.status, 0, result.stderr);
    assert.equal(await sha256(join(work, 'big-back.bin')), await sha256(big));
  });
});

/** Runs PuTTY's pscp (over SFTP) as alice, in `cwd`, trusting the step's Ed25519 host key. */
function pscp(port: number, args: string[], cwd: string) {
  const scan = spawnSync('ssh-keyscan', ['-p', String(port), '-t', 'ed25519', '127.0.0.1'], { encoding: 'utf8' });
  const fingerprint = spawnSync('ssh-keygen', ['-lf', '-'], { input: scan.stdout, encoding: 'utf8' }).stdout.split(' ')[1]!;
  return spawnSync('pscp', ['-sftp', '-batch', '-q', '-P', String(port), '-pw', 'wonderland', '-hostkey', fingerprint,
    ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
}

// The sizes of the issue that found scp cutting downloads short: each is copied 10 times, as 10 files.
const sizes = { '300K': 300_000, '1M': 1_000_000, '5M': 5_000_000, '50M': 50_000_000 };
const copies = 10;

describe('step 12: every byte of every transfer, down and up, with scp, sftp and pscp', { timeout: 600_000 }, () => {
  const step = useStep('12-sftp-server.ts', { env: { SFTP_HOME: home } });
  // The files: 10 of each size, each its own random bytes, in alice's folder (to download) and here (to upload).
  const local = temporaryDir();
  const files: string[] = [];
  before(() => {
    mkdirSync(join(alice, 'down'));
    for (const [name, size] of Object.entries(sizes)) {
      for (let i = 0; i < copies; i++) {
        const file = `${name}-${i}.bin`;
        const bytes = randomBytes(size);
        writeFileSync(join(alice, 'down', file), bytes);
        writeFileSync(join(local, file), bytes);
        files.push(file);
      }
    }
  });
  after(() => rmSync(join(alice, 'down'), { recursive: true }));
  // Each file that came through is compared byte for byte with the one it copies.
  const sameFiles = (from: string, to: string, how: string) => {
    for (const file of files) {
      const copy = join(to, file);
      assert.ok(existsSync(copy), `${how}: ${file} was copied`);
      assert.ok(readFileSync(copy).equals(readFileSync(join(from, file))),
        `${how}: ${file} has every byte (${statSync(copy).size} of ${statSync(join(from, file)).size})`);
    }
  };
  // Copies all the files with `down` and then `up` (each given the names' pattern of one size), and compares them.
  const both = async (how: string, down: (pattern: string, to: string) => Promise<void>,
    up: (names: string[], to: string) => Promise<void>) => {
    const into = temporaryDir();
    const upTo = `up-${how.replace(/\W+/g, '-')}`;
    mkdirSync(join(alice, upTo));
    for (const name of Object.keys(sizes)) {
      await down(`down/${name}-*.bin`, into);
      await up(files.filter((file) => file.startsWith(`${name}-`)), upTo);
    }
    sameFiles(join(alice, 'down'), into, `${how} download`);
    sameFiles(local, join(alice, upTo), `${how} upload`);
    rmSync(into, { recursive: true });
    rmSync(join(alice, upTo), { recursive: true });
  };

  for (const options of [[], ['-X', 'nrequests=64']]) {
    const how = ['scp', ...options].join(' ');
    test(`${how}: 10 files each of 300 KB, 1 MB, 5 MB and 50 MB`, () => both(how, async (pattern, to) => {
      const result = await client('scp', step().port, [...options, `alice@localhost:${pattern}`, to], local);
      assert.equal(result.status, 0, `${how} download: ${result.stderr}`);
    }, async (names, to) => {
      const result = await client('scp', step().port, [...options, ...names, `alice@localhost:${to}/`], local);
      assert.equal(result.status, 0, `${how} upload: ${result.stderr}`);
    }));
  }

  test('sftp: the same files, with get and put', () => both('sftp', async (pattern, to) => {
    const result = await client('sftp', step().port, ['-b', '-', 'alice@localhost'], local, `get ${pattern} ${to}\n`);
    assert.equal(result.status, 0, `sftp get: ${result.stderr}`);
  }, async (names, to) => {
    const result = await client('sftp', step().port, ['-b', '-', 'alice@localhost'], local,
      names.map((name) => `put ${name} ${to}/\n`).join(''));
    assert.equal(result.status, 0, `sftp put: ${result.stderr}`);
  }));

  test('pscp (PuTTY 0.78): the same files', () => both('pscp', async (pattern, to) => {
    const result = pscp(step().port, [`alice@127.0.0.1:${pattern}`, to], local);
    assert.notEqual((result.error as NodeJS.ErrnoException)?.code, 'ENOENT', 'pscp is installed (putty-tools)');
    assert.equal(result.error, undefined);
    assert.equal(result.status, 0, `pscp download: ${result.stderr}`);
  }, async (names, to) => {
    const result = pscp(step().port, [...names, `alice@127.0.0.1:${to}/`], local);
    assert.equal(result.status, 0, `pscp upload: ${result.stderr}`);
  }));
});

/** Logs in with ssh2's client and opens its SFTP session. */
async function sftpLogin(port: number) {
  const connection = await ssh2Login(port, 'alice', 'wonderland');
  const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) =>
    connection.sftp((err, s) => (err ? reject(err) : resolve(s))));
  return { connection, sftp };
}

/** The SFTP status code an operation fails with (or 0 when it succeeds). */
function statusOf(run: (done: (err?: Error | null) => void) => void): Promise<number> {
  return new Promise((resolve) => run((err) => resolve(err ? (err as Error & { code: number }).code : 0)));
}

describe('step 12 attacked', { timeout: 120_000 }, () => {
  const outside = temporaryDir();
  const step = useStep('12-sftp-server.ts', { env: { SFTP_HOME: home, SFTP_MAX_HANDLES: '20' } });

  test('no path leaves the folder: not .., not a link planted inside, not a NUL byte; each refusal is logged', async () => {
    writeFileSync(join(outside, 'secret.txt'), 'secret\n');
    const { connection, sftp } = await sftpLogin(step().port);
    try {
      // Planted by someone else (this process, here): links that point out of alice's folder.
      symlinkSync(outside, join(alice, 'out'));
      symlinkSync(join(outside, 'secret.txt'), join(alice, 'secret-link'));
      const denied = STATUS_CODE.PERMISSION_DENIED;
      const attempts: [string, (done: (err?: Error | null) => void) => void][] = [
        ['read through a folder link', (done) => sftp.open('out/secret.txt', 'r', done)],
        ['read a file link', (done) => sftp.open('secret-link', 'r', done)],
        ['write through a folder link', (done) => sftp.open('/out/new.txt', 'w', done)],
        ['list a folder link', (done) => sftp.opendir('out', done)],
        ['stat through a folder link', (done) => sftp.stat('out/secret.txt', done)],
        ['mkdir through a folder link', (done) => sftp.mkdir('out/d', done)],
        ['chmod a file link', (done) => sftp.chmod('secret-link', 0o777, done)],
        ['rename into a folder link', (done) => sftp.rename('secret-link', 'out/moved', done)],
        ['rename out of a folder link', (done) => sftp.rename('out/secret.txt', 'mine.txt', done)],
        ['remove through a folder link', (done) => sftp.unlink('out/secret.txt', done)],
        ['climb with ..', (done) => sftp.open('../../../../etc/passwd', 'r', done)],
        ['climb with .. in the middle', (done) => sftp.stat('docs/../../alice/out', done)],
        ['realpath above /', (done) => sftp.realpath('/..', done)],
        ['a NUL byte', (done) => sftp.open('a\0b', 'w', done)],
      ];
      for (const [what, attempt] of attempts) assert.equal(await statusOf(attempt), denied, what);
      // An absolute path is a path in the folder: /etc/passwd is not there.
      assert.equal(await statusOf((done) => sftp.open('/etc/passwd', 'r', done)), STATUS_CODE.NO_SUCH_FILE);
      // A link is listed and read as a link, never followed.
      const target = await new Promise((resolve) => sftp.readlink('secret-link', (err, t) => resolve(t)));
      assert.equal(target, join(outside, 'secret.txt'));
      assert.deepEqual(readdirSync(outside), ['secret.txt']);
      assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'secret\n');
      await waitFor('the log lines', () => count(step(), /sftp: refused .* for alice: /g) >= attempts.length - 1 || undefined);
      await logged(step(), /sftp: refused "\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd" for alice: "\.\." above the folder$/m);
      await logged(step(), /sftp: refused "a\\x00b" for alice: a NUL byte in the path$/m);
    } finally {
      connection.end();
    }
  });

  test('modes: no setuid, setgid or sticky bit, a umask of 022, and the folder itself stays 0700', async () => {
    const { connection, sftp } = await sftpLogin(step().port);
    const call = (run: (done: (err?: Error | null) => void) => void) =>
      new Promise<void>((resolve, reject) => run((err) => (err ? reject(err) : resolve())));
    const open = (name: string, mode: number) => new Promise<Buffer>((resolve, reject) =>
      sftp.open(name, 'w', { mode }, (err, handle) => (err ? reject(err) : resolve(handle))));
    const modeOf = (name: string) => (statSync(join(alice, name)).mode & 0o7777).toString(8);
    try {
      const made = await open('made-4777', 0o4777);
      await call((done) => sftp.close(made, done));
      assert.equal(modeOf('made-4777'), '755');
      await call((done) => sftp.chmod('made-4777', 0o4755, done));
      assert.equal(modeOf('made-4777'), '755', 'setuid by SETSTAT');
      await call((done) => sftp.chmod('made-4777', 0o2777, done));
      assert.equal(modeOf('made-4777'), '755', 'setgid and world-writable by SETSTAT');
      const handle = await open('fchmod-me', 0o644);
      await call((done) => sftp.fchmod(handle, 0o6755, done));
      await call((done) => sftp.close(handle, done));
      assert.equal(modeOf('fchmod-me'), '755', 'setuid and setgid by FSETSTAT');
      await call((done) => sftp.mkdir('made-7777', { mode: 0o7777 }, done));
      assert.equal(modeOf('made-7777'), '755');
      await call((done) => sftp.chmod('made-7777', 0o1777, done));
      assert.equal(modeOf('made-7777'), '755', 'sticky and world-writable folder');
      for (const root of ['/', '.', '', 'made-7777/..']) {
        assert.equal(await statusOf((done) => sftp.chmod(root, 0o777, done)), STATUS_CODE.PERMISSION_DENIED, root);
      }
      assert.equal((statSync(alice).mode & 0o7777).toString(8), '700');
      // Its times may still change: only its permissions are kept.
      await call((done) => sftp.utimes('/', 1_700_000_000, 1_700_000_000, done));
    } finally {
      connection.end();
    }
  });

  test('garbage after the SFTP handshake ends that session, not the connection', async () => {
    const connection = await ssh2Login(step().port, 'alice', 'wonderland');
    try {
      for (const garbage of [[0, 0, 0, 5, 250, 0, 0, 0, 1], [0xff, 0xff, 0xff, 0xff]]) {
        const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
          connection.subsys('sftp', (err, c) => (err ? reject(err) : resolve(c))));
        const closed = new Promise((resolve) => channel.on('close', resolve));
        channel.resume();
        channel.write(Buffer.from([0, 0, 0, 5, 1, 0, 0, 0, 3])); // INIT, version 3
        channel.write(Buffer.from(garbage));
        await closed;
      }
      // The same connection still opens an SFTP session that works.
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) =>
        connection.sftp((err, s) => (err ? reject(err) : resolve(s))));
      assert.equal(await new Promise((resolve) => sftp.realpath('.', (err, path) => resolve(path))), '/');
    } finally {
      connection.end();
    }
    await logged(step(), /sftp: Unknown packet type 250$/m);
  });

  test('handles are bounded, and every file a session opened is closed when it ends (50 sessions)', async () => {
    writeFileSync(join(alice, 'f.txt'), 'f\n');
    const openFiles = () => readdirSync(`/proc/${step().pid}/fd`).length;
    const { connection: warm } = await sftpLogin(step().port);
    warm.end();
    await quiet(step());
    const before = openFiles();
    for (let i = 0; i < 50; i++) {
      const { connection, sftp } = await sftpLogin(step().port);
      const opened = await Promise.all(Array.from({ length: 25 }, (_, j) =>
        statusOf((done) => (j % 5 ? sftp.open('f.txt', 'r', done) : sftp.opendir('/', done)))));
      assert.equal(opened.filter((code) => code === 0).length, 20, 'SFTP_MAX_HANDLES');
      connection.end();
    }
    await quiet(step());
    await waitFor('the files to close', () => openFiles() <= before || undefined);
  });

  test('a client that asks for 2 GiB of reads and reads no answers does not grow the step', async () => {
    writeFileSync(join(alice, 'big.bin'), Buffer.alloc(1024 * 1024, 1));
    const { connection, sftp } = await sftpLogin(step().port);
    try {
      const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('big.bin', 'r', (err, h) => (err ? reject(err) : resolve(h))));
      const before = residentMiB(step().pid);
      const peak = await peakDuring(step().pid, async () => {
        // Stop reading what the server sends, then ask for 65536 reads (ssh2's client asks 32 KiB at a time: 2 GiB).
        (connection as unknown as { _sock: Socket })._sock.pause();
        const buffer = Buffer.alloc(64 * 1024);
        for (let i = 0; i < 65536; i++) sftp.read(handle, buffer, 0, buffer.length, 0, () => {});
        // The peak is measured over a window: four seconds in which an unbounded step would have read and queued.
        await new Promise((resolve) => setTimeout(resolve, 4000));
      });
      assert.ok(peak - before < 60, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    } finally {
      connection.destroy();
    }
    assert.ok(existsSync(join(alice, 'big.bin')));
  });
});
