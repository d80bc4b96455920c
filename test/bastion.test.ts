// Step 20, a bastion: OpenSSH's ssh -A with a real ssh-agent holding the user's key, through the bastion to step 14
// on this machine (its inner server); the recordings replayed by asciinema and by asciinema-player in headless
// Chromium; then ssh2's client for what OpenSSH will not do (an agent that answers garbage, a client that never reads).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import ssh2 from 'ssh2';
import { atPrompt, commandLine, debianTesting, debianTestingHome, execute, inDebianTesting, logged, processTree, root, sshOptions,
  stalled, startStep, type Step, temporaryDir, useStep, waitFor } from './helpers.ts';
import { peakDuring, residentMiB, socketOf } from './hostile.ts';
import { PAGE_CONNECTIONS_MAX } from '../shared/channels/recordings-page.ts';

const dir = temporaryDir();
const key = join(dir, 'key');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice', '-f', key]);
// alice and bob may log in to the bastion; only alice to the inner server.
const bastionKeys = join(dir, 'bastion-keys');
const innerKeys = join(dir, 'inner-keys');
for (const [folder, users] of [[bastionKeys, ['alice', 'bob']], [innerKeys, ['alice']]] as const) {
  mkdirSync(folder);
  for (const user of users) writeFileSync(join(folder, user), readFileSync(`${key}.pub`));
}
const knownHosts = join(dir, 'known_hosts');
const recordings = join(dir, 'recordings'); // not there yet: the step makes it
const many = { MAX_STARTUPS: '100', PER_SOURCE_MAX_STARTUPS: '100', MAX_SESSIONS: '100' };

// The user's agent, as `eval $(ssh-agent)` and `ssh-add` would make it.
const agentSocket = join(dir, 'agent.sock');
const agentProcess = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
const agentEnv = { ...process.env, SSH_AUTH_SOCK: agentSocket };
/** Puts the key in the agent (`ssh-add`), or takes every key out (`ssh-add -D`). */
const agentHolds = (holds: boolean) => execFileSync('ssh-add', holds ? ['-q', key] : ['-q', '-D'], { env: agentEnv, stdio: 'ignore' });

/** OpenSSH's ssh through the bastion, logged in there by the key file (not by the agent), the agent forwarded when `-A`. */
function ssh(port: number, user: string, args: string[], input = '') {
  const result = spawnSync('ssh', [...sshOptions, '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR',
    '-p', String(port), `${user}@localhost`, ...args], { env: agentEnv, input, encoding: 'utf8', timeout: 30_000 });
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

/** An ssh2 client logged in to the bastion with the key, whose sessions forward `agent` (the real one by default). */
function login(port: number, agent: string | ssh2.BaseAgent = agentSocket, username = 'alice'): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    client.on('ready', () => resolve(client)).on('error', reject);
    client.connect({ host: '127.0.0.1', port, username, privateKey: readFileSync(key), agent, agentForward: true,
      authHandler: ['publickey'] });
  });
}

/** The recordings' files, oldest first (their names begin with when they started). */
const casts = () => (existsSync(recordings) ? readdirSync(recordings).sort() : []);
/** What a recording in `folder` holds so far: '' until the bastion has made its file (it opens it as it logs its name). */
const recordedIn = (folder: string, name: string) => (existsSync(join(folder, name)) ? readFileSync(join(folder, name), 'utf8') : '');
const recorded = (name: string) => recordedIn(recordings, name);

describe('step 20: a bastion', { timeout: 180_000 }, () => {
  let inner: Step;
  before(async () => {
    await waitFor('the agent\'s socket', () => existsSync(agentSocket) || undefined);
    agentHolds(true);
    inner = await startStep('14-real-shell.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: innerKeys, SHELL: '/bin/sh', HOME: dir, ...many } });
    writeFileSync(knownHosts, execFileSync('ssh-keyscan', ['-p', String(inner.port), 'localhost'], { stdio: ['ignore', 'pipe', 'ignore'] }));
  });
  // The agent goes with the suite: the file's last hook (helpers.ts) fails on any process the file leaves running.
  after(async () => {
    agentProcess.kill();
    await inner?.stop();
  });
  // No SSH_AUTH_SOCK of its own: the only agent it can reach is the one each user forwards.
  // Its tests make many onward logins fail on purpose, as the same users: ONWARD_FAILURES_MAX is tested apart.
  const bastion = useStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
    KNOWN_HOSTS: knownHosts, RECORDINGS_DIR: recordings, RECORDINGS_PORT: '0', ...many, ONWARD_FAILURES_MAX: '1000',
    get TARGET() { return `localhost:${inner.port}`; } } });
  const target = () => `localhost:${inner.port}`;

  test('ssh -A: a command runs on the inner server, its output and its exit status come back', async () => {
    const result = ssh(bastion().port, 'alice', ['-A', 'echo "on the inner server, in $PWD"; echo to stderr >&2; exit 3']);
    assert.deepEqual(result, { stdout: `on the inner server, in ${dir}\n`, stderr: 'to stderr\n', status: 3 });
    await waitFor('the log line', () => new RegExp(`alice → ${target()}, recorded in \\S+\\.cast: echo `).test(bastion().output()) || undefined);
    assert.equal(ssh(bastion().port, 'alice', ['-A', 'cat; exit 0'], 'what was typed\n').stdout, 'what was typed\n');
  });

  test('a session without a terminal whose program shows nothing: what was sent to it is in its recording', async () => {
    const before = casts();
    const sent = 'exec >/dev/null 2>&1\necho unseen > /dev/null\nexit 4\n';
    assert.equal(ssh(bastion().port, 'alice', ['-A', '-T'], sent).status, 4);
    const [name] = casts().filter((each) => !before.includes(each));
    assert.ok(name, 'a new recording');
    // Until this change the recording was its header alone: nothing was echoed, and only output was kept.
    const typed = () => recorded(name).trimEnd().split('\n').slice(1).map((line) => JSON.parse(line))
      .filter(([, code]) => code === 'i').map(([, , data]) => data).join('');
    await waitFor('all that was sent, recorded', () => (typed() === sent || undefined));
  });

  test('ssh -A in a terminal: a shell there, the size follows the window, exit 5; the recording replays it', async () => {
    const before = casts();
    const command = ['ssh', ...sshOptions, '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-A', '-p',
      String(bastion().port), 'alice@localhost'];
    // The inner shell's terminal is the one tmux gives ssh, and its size follows tmux's window through both servers.
    const status = await atPrompt(command, { SSH_AUTH_SOCK: agentSocket }, async (terminal) => {
      assert.ok((await terminal.typeLine('stty size; echo typed-$((6*7))', 'typed-42')).includes('30 100'));
      terminal.resize(120, 40);
      // The bastion records the new size once it has passed it on to the inner server, where it lands before
      // anything typed after it: from then on the inner shell's terminal is 120x40.
      await waitFor('the new size in the recording', () => {
        const [name] = casts().filter((each) => !before.includes(each));
        return (name && recorded(name).includes(',"r","120x40"]\n')) || undefined;
      });
      await terminal.typeLine('stty size', '40 120');
      return terminal.exitWith(5);
    });
    assert.equal(status, 5);
    const [name] = casts().filter((each) => !before.includes(each));
    assert.ok(name, 'a new recording');
    // asciicast v2: a header, then events in time order; output and resizes only.
    const [first, ...events] = readFileSync(join(recordings, name), 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line));
    assert.equal(first.version, 2);
    assert.deepEqual([first.width, first.height, first.env.USER, first.env.TERM], [100, 30, 'alice', 'tmux-256color']);
    assert.ok(Math.abs(first.timestamp - Date.now() / 1000) < 60, 'a timestamp in seconds');
    assert.equal(first.title, `alice@${target()}: shell`);
    let time = 0;
    for (const [seconds, code, data] of events) {
      assert.ok(typeof seconds === 'number' && seconds >= time && ['o', 'r'].includes(code) && typeof data === 'string');
      time = seconds;
    }
    assert.ok(events.some(([, code, data]) => code === 'r' && data === '120x40'));
    // Readable by the step's user alone, in a folder of its own.
    assert.equal(statSync(join(recordings, name)).mode & 0o777, 0o600);
    assert.equal(statSync(recordings).mode & 0o777, 0o700);
    // asciinema replays it (its cat wants a terminal of its own: script gives it one).
    const shown = execFileSync('script', ['-qec', `asciinema cat ${join(recordings, name)}`, '/dev/null'], { encoding: 'utf8' });
    assert.match(shown, /stty size; echo typed-\$\(\(6\*7\)\)\r\n30 100\r\ntyped-42\r\n/);
    assert.match(shown, /40 120\r\n/);
  });

  test('the bastion\'s files hold no private key of the user\'s; it never had an agent of its own', () => {
    const secret = readFileSync(key, 'utf8').split('\n').slice(1, -2).join('');
    const files = (folder: string): string[] => readdirSync(folder, { withFileTypes: true })
      .flatMap((entry) => (entry.isDirectory() ? files(join(folder, entry.name)) : [join(folder, entry.name)]));
    for (const file of [...files(bastionKeys), ...files(recordings), knownHosts]) {
      const text = readFileSync(file, 'utf8');
      assert.ok(!text.includes('PRIVATE KEY') && !text.replaceAll('\n', '').includes(secret.slice(0, 40)), file);
    }
    assert.doesNotMatch(readFileSync(`/proc/${bastion().pid}/environ`, 'utf8'), /SSH_AUTH_SOCK=[^\0]/);
  });

  test('without -A, with an empty agent, for a user the inner server refuses: one line, status 1', () => {
    assert.deepEqual(ssh(bastion().port, 'alice', ['echo hi']),
      { stdout: '', stderr: `This bastion logs you in to ${target()} with your own key: connect with ssh -A.\n`, status: 1 });
    agentHolds(false);
    try {
      assert.deepEqual(ssh(bastion().port, 'alice', ['-A', 'echo hi']), { stdout: '',
        stderr: `bastion: your agent offers no key for ${target()} (ssh-add -h may keep yours to other hosts)\n`, status: 1 });
    } finally {
      agentHolds(true);
    }
    assert.deepEqual(ssh(bastion().port, 'bob', ['-A', 'echo hi']),
      { stdout: '', stderr: `bastion: ${target()} refused bob with the keys in your agent\n`, status: 1 });
  });

  test('an inner server whose host key is not the known one is refused, and one not listed too', () => {
    const listed = readFileSync(knownHosts, 'utf8');
    const other = join(dir, 'other');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    try {
      const otherKey = readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      writeFileSync(knownHosts, `[localhost]:${inner.port} ${otherKey}\n`);
      assert.deepEqual(ssh(bastion().port, 'alice', ['-A', 'echo hi']), { stdout: '', status: 1,
        stderr: `bastion: the host key of [localhost]:${inner.port} is not the one in ${knownHosts}: refused\n` });
      writeFileSync(knownHosts, `[localhost]:1 ${otherKey}\n`);
      assert.deepEqual(ssh(bastion().port, 'alice', ['-A', 'echo hi']), { stdout: '', status: 1,
        stderr: `bastion: [localhost]:${inner.port} is not in the known hosts file ${knownHosts} (add it with ssh-keyscan)\n` });
      // Hashed, as ssh-keygen -H writes it: taken.
      writeFileSync(knownHosts, listed);
      execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts], { stdio: 'ignore' });
      assert.equal(ssh(bastion().port, 'alice', ['-A', 'echo hi']).stdout, 'hi\n');
    } finally {
      writeFileSync(knownHosts, listed);
    }
  });

  test('a signal reaches the program, and how it ended comes back (ssh2 client, with the real agent)', async () => {
    const client = await login(bastion().port);
    try {
      const logged = bastion().output().length;
      const sleeping = new Promise<{ code: number | null; signal?: string }>((resolve, reject) =>
        client.exec('sleep 30', (err, channel) => {
          if (err) return reject(err);
          let ended: { code: number | null; signal?: string } = { code: null };
          channel.on('exit', (code: number | null, signal?: string) => (ended = { code, signal }));
          channel.on('close', () => resolve(ended));
          channel.resume();
          // A signal goes on once the session on the inner server is open (the bastion logs it); before that there
          // is no program to send it to, and the bastion, as sshd, drops it. The inner server has started the
          // program in its own process group by then, and the signal goes to that group.
          waitFor('the session on the inner server', () => /, recorded in \S+\.cast: sleep 30$/m.test(bastion().output().slice(logged)) || undefined)
            .then(() => channel.signal('TERM'), reject);
        }));
      assert.deepEqual(await sleeping, { code: null, signal: 'SIGTERM' }); // as ssh2's client names it
    } finally {
      client.end();
    }
  });

  test('50 sessions at once, each through its own agent channel, all come back', async () => {
    const clients = await Promise.all(Array.from({ length: 50 }, () => login(bastion().port)));
    try {
      const results = await Promise.all(clients.map((client, i) => execute(client, `echo session ${i}`)));
      assert.deepEqual(results.map((r) => [r.out, r.code]), results.map((r, i) => [`session ${i}\n`, 0]));
    } finally {
      for (const client of clients) client.end();
    }
  });

  test('a user who leaves while their agent has not yet signed: the login onward finishes, and nothing is started there', async () => {
    let signAsked!: () => void;
    const asked = new Promise<void>((resolve) => (signAsked = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    /** The real agent, but its signatures held back until `released`. */
    class Slow extends ssh2.BaseAgent {
      getIdentities(cb: (err: Error) => void) { cb(new Error('the client logs in with its key file')); }
      sign(...args: unknown[]) { (args.at(-1) as (err: Error) => void)(new Error('the client logs in with its key file')); }
      getStream(cb: (err: Error | undefined, stream?: Duplex) => void) {
        const socket = connect(agentSocket);
        const stream = new Duplex({ read() {}, write(chunk, encoding, done) { socket.write(chunk, done); },
          final(done) { socket.end(); done(); }, destroy(err, done) { socket.destroy(); done(err); } });
        socket.on('data', async (data: Buffer) => {
          // The agent's answers in this read: each its length, then its type (14: a signature).
          const types: number[] = [];
          for (let at = 0; at + 5 <= data.length; at += 4 + data.readUInt32BE(at)) types.push(data[at + 4]!);
          if (types.includes(14)) (signAsked(), await released);
          stream.push(data);
        });
        socket.on('close', () => stream.push(null)).on('error', () => stream.destroy());
        socket.on('connect', () => cb(undefined, stream));
      }
    }
    const from = inner.output().length;
    const client = await login(bastion().port, new Slow() as unknown as ssh2.BaseAgent);
    try {
      const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.exec('echo started-after-all', (err, c) => (err ? reject(err) : resolve(c))));
      await asked;
      const [, port] = /127\.0\.0\.1:(\d+) connection opened/.exec(inner.output().slice(from)) ?? assert.fail('no connection to the inner server');
      // The user leaves before the signature reaches the bastion. The login onward is let finish (cut off halfway,
      // it would count against the bastion's address on the inner server, for every user), then ends: nothing is
      // started there.
      channel.resume().close();
      await once(channel, 'close'); // the bastion has taken the close, and answered it
      release();
      await waitFor('the inner connection to close', () => inner.output().slice(from).includes(`:${port} connection closed`) || undefined);
      assert.match(inner.output().slice(from), new RegExp(`:${port} authenticated as alice`));
      assert.doesNotMatch(bastion().output(), /started-after-all/);
    } finally {
      client.end();
    }
  });

  test('hostile agents: garbage, a length of 4 GiB and endless bytes; the user is refused, the bastion goes on', async () => {
    /** An agent whose answer to anything is `answer`; it has no keys for the client's own login. */
    class Hostile extends ssh2.BaseAgent {
      readonly answer: () => Buffer[];
      constructor(answer: () => Buffer[]) {
        super();
        this.answer = answer;
      }
      getIdentities(cb: (err: Error | undefined, keys?: ssh2.ParsedKey[]) => void) { cb(undefined, []); }
      sign(...args: unknown[]) { (args.at(-1) as (err: Error) => void)(new Error('no')); }
      getStream(cb: (err: Error | undefined, stream?: Duplex) => void) {
        const answer = this.answer;
        let sent = false;
        cb(undefined, new Duplex({
          read() {},
          write(chunk, encoding, done) {
            if (!sent) for (const part of answer()) this.push(part);
            sent = true;
            done();
          },
        }));
      }
    }
    const endless = () => [Buffer.from([0xff, 0xff, 0xff, 0xff, 12]), ...Array.from({ length: 256 }, () => Buffer.alloc(65536, 0x41))];
    for (const answer of [() => [Buffer.from('this is not the agent protocol at all\n')], endless,
      () => [Buffer.from([0, 0, 0, 5, 12, 0xff, 0xff, 0xff, 0xff])]]) {
      const before = residentMiB(bastion().pid);
      const peak = await peakDuring(bastion().pid, async () => {
        const client = await login(bastion().port, new Hostile(answer) as unknown as ssh2.BaseAgent);
        try {
          const result = await execute(client, 'echo hi');
          assert.deepEqual([result.out, result.err, result.code], ['', `bastion: ${target()} refused alice with the keys in your agent\n`, 1]);
        } finally {
          client.end();
        }
      });
      // The bastion drops what an agent sends past its bound: ssh2's parser kept it, copying all it had at each
      // packet, and a window's 2 MiB of endless bytes cost some 70 MiB on Node 26 (14 on Node 20, whose collector
      // came sooner).
      assert.ok(peak - before < 30, `resident memory went from ${before} to ${peak} MiB`);
    }
    assert.equal(ssh(bastion().port, 'alice', ['-A', 'echo still here']).stdout, 'still here\n');
  });

  test('a client that never reads: the inner output waits, memory stays bounded; a huge terminal is only a number', async () => {
    const start = residentMiB(bastion().pid);
    const client = await login(bastion().port);
    try {
      const peak = await peakDuring(bastion().pid, async () => {
        const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
          client.exec('cat /dev/zero', (err, c) => (err ? reject(err) : resolve(c))));
        channel.pause(); // read nothing: the window closes, and the bastion stops reading the inner server
        // Until cat itself waits, its output held back all the way (a bastion that read on would let it run on).
        const cat = await waitFor('cat on the inner server', () => processTree(inner.pid).find((pid) => commandLine(pid) === 'cat /dev/zero'));
        const written = await stalled('cat to stop writing', cat);
        assert.ok(written < 64 * 2 ** 20, `cat wrote ${written} bytes before it had to wait`);
        // The user leaves the session: it ends on the inner server too. (A bastion that went on read cat's zeros for
        // nobody, as fast as it could, for as long as cat ran: every later test found it busy.)
        const from = bastion().output().length;
        channel.close();
        await waitFor('cat on the inner server to end', () => (processTree(inner.pid).includes(cat) ? undefined : true));
        await waitFor('the bastion to say so', () => /alice left; their session on localhost:\d+ ended with it/.test(bastion().output().slice(from)) || undefined);
      });
      assert.ok(peak - start < 80, `from ${start} to ${peak} MiB`);
      assert.ok(residentMiB(inner.pid) < 300, `the inner server holds ${residentMiB(inner.pid)} MiB`);
      const huge = await execute(client, 'stty size', { pty: { cols: 10000, rows: 10000, width: 0, height: 0, term: 'xterm' } });
      assert.equal(huge.code, 0);
    } finally {
      client.end();
    }
    assert.equal(ssh(bastion().port, 'alice', ['-A', 'echo still here']).stdout, 'still here\n');
  });

  test('a user who closes a session whose input and output both wait, then vanishes: the inner program ends too', async () => {
    const client = await login(bastion().port);
    try {
      const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.exec('cat /dev/zero', (err, c) => (err ? reject(err) : resolve(c))));
      channel.on('error', () => {});
      channel.pause(); // its output is never read: the bastion's writes to this channel wait
      const cat = await waitFor('cat on the inner server', () => processTree(inner.pid).find((pid) => commandLine(pid) === 'cat /dev/zero'));
      // Typed ahead, and never read there (cat reads /dev/zero alone): the inner window fills, then the bastion's, and
      // the bastion stops reading this channel with some of it still waiting.
      channel.write(Buffer.alloc(16 * 2 ** 20, 0x61));
      await stalled('the bastion to stop', bastion().pid);
      // Closed with both ways waiting, the channel neither ends nor closes in ssh2 (that waits for the reading, and
      // the writing, that never come); nor, once closed, does the lost connection close it again.
      channel.close();
      socketOf(client).destroy();
      await waitFor('cat on the inner server to end', () => (processTree(inner.pid).includes(cat) ? undefined : true));
    } finally {
      client.end();
    }
  });

  test('recordings page: 401 without the token; with it, the list and each session, everything escaped, no path tricks', async () => {
    ssh(bastion().port, 'alice', ['-A', `echo '<img src=x onerror=alert(1)>'`]);
    const address = /recordings: (http:\/\/127\.0\.0\.1:\d+)\/\?token=([0-9a-f]{32})/.exec(bastion().output())!;
    const [, base, token] = address;
    const get = (path: string, cookie = `token=${token}`) => fetch(`${base}${path}`, { headers: { cookie }, redirect: 'manual' });
    const name = casts().at(-1)!;
    for (const path of ['/', `/play/${name}`, `/recordings/${name}`, '/player.js']) {
      assert.equal((await get(path, '')).status, 401, path);
      assert.equal((await get(path, `token=${'0'.repeat(32)}`)).status, 401, path);
    }
    const login = await get(`/?token=${token}`, '');
    assert.equal(login.status, 303);
    assert.match(login.headers.get('set-cookie')!, /^token=[0-9a-f]{32}; HttpOnly; SameSite=Strict; Path=\/$/);
    const list = await (await get('/')).text();
    assert.ok(list.includes('&#60;img src=x onerror=alert(1)&#62;') && !list.includes('<img'), list);
    assert.match(list, /<td>alice<\/td><td>\d{4}-\d\d-\d\dT[\d:.]+Z<\/td><td>\d+\.\d s<\/td>/);
    assert.equal((await get(`/recordings/${name}`)).status, 200);
    for (const trick of ['/recordings/..%2Fknown_hosts', '/recordings/../known_hosts', `/play/%2E%2E%2F${name}`,
      '/recordings/%E0%A4%A', `/recordings/${name}%00`, '/recordings/.', `/play/${name}/..`]) {
      assert.equal((await get(trick)).status, 404, trick);
    }
    assert.equal((await fetch(`${base}/`, { method: 'POST', headers: { cookie: `token=${token}` } })).status, 405);
  });

  test('hostile: 300 idle connections to the recordings page: it keeps 64, and closes the rest at once; SSH goes on', async () => {
    const port = Number(await waitFor('the page\'s address', () => /recordings: http:\/\/127\.0\.0\.1:(\d+)\//.exec(bastion().output())?.[1]));
    const sockets = Array.from({ length: 300 }, () => connect(port, '127.0.0.1').on('error', () => {}));
    try {
      let closed = 0;
      for (const socket of sockets) socket.once('close', () => (closed += 1));
      // Held open: a request's first line, and never its end (each once held a file of the process for a minute).
      for (const socket of sockets) socket.once('connect', () => socket.write('GET / HTTP/1.1\r\n'));
      // (Connections of earlier tests that the page keeps alive count among its 64: more of these may be closed.)
      await waitFor('all but 64 at most closed', () => closed >= 300 - PAGE_CONNECTIONS_MAX || undefined);
      assert.deepEqual(ssh(bastion().port, 'alice', ['-A', 'echo still here']), { stdout: 'still here\n', stderr: '', status: 0 });
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  test('recordings page in headless Chromium: the list shows the session, and its player shows what was typed', async () => {
    const executablePath = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(executablePath, 'Debian\'s chromium is installed (.ci/run installs it): `command -v chromium` finds none');
    const [, base, token] = /recordings: (http:\/\/127\.0\.0\.1:\d+)\/\?token=([0-9a-f]{32})/.exec(bastion().output())!;
    const title = `alice@localhost:${inner.port}: shell`;
    // (Its resize tells it from the shell without a terminal, of the same title, that another test makes.)
    const shell = casts().find((name) => readFileSync(join(recordings, name), 'utf8').includes(`"title":"${title}"`)
      && recorded(name).includes(',"r","120x40"]\n'));
    assert.ok(shell, 'the recording of the session in a terminal (the test "ssh -A in a terminal" makes it)');
    // Where the player stands once it has drawn the last frame: at the recording's last event, as mm:ss.
    const end = Math.floor(Number(JSON.parse(recorded(shell).trimEnd().split('\n').at(-1)!)[0]));
    const atEnd = `${String(Math.floor(end / 60)).padStart(2, '0')}:${String(end % 60).padStart(2, '0')}`;
    const artifacts = join(root, 'test', 'artifacts');
    mkdirSync(artifacts, { recursive: true });
    const failedShot = join(artifacts, 'bastion-recording-failed.png');
    rmSync(failedShot, { force: true });
    // playwright-core drives Debian's Chromium (no browser of its own). Its launch already passes --headless (for
    // `headless`), --no-sandbox, --no-first-run, --disable-background-networking, --disable-component-update,
    // --disable-sync and a fresh --user-data-dir of its own, removed at close (it refuses one in `args`); this machine
    // also needs no GPU and no QUIC.
    const browser = await chromium.launch({ executablePath, headless: true, args: ['--disable-gpu', '--disable-quic'], timeout: 60_000 });
    const problems: string[] = []; // what went wrong in the page, for the messages
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
      page.setDefaultTimeout(30_000);
      page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
      page.on('console', (message) => {
        // The page has no icon: Chromium's own request for one gets a 404, which it logs.
        if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) {
          problems.push(`console: ${message.text()} (${message.location().url})`);
        }
      });
      page.on('requestfailed', (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`));
      try {
        // The token logs in (a cookie) and leaves the address: the list, at /.
        const listed = await page.goto(`${base}/?token=${token}`);
        assert.equal(listed?.status(), 200);
        assert.equal(page.url(), `${base}/`);
        const link = page.locator(`a[href="/play/${shell}"]`);
        assert.equal(await link.textContent(), title);
        await link.click();
        await page.waitForURL(`${base}/play/${shell}`);
        // The player's own state: its timer reads --:-- until it has read the recording and fed its terminal the frame
        // the page asks for (a second past the last event, clamped to the end: 0 seconds left), or it shows its error
        // overlay (asciinema-player 3.18 tells no event for that: 'playing' and 'ended' come of playing alone).
        const timer = page.locator('#player .ap-time-remaining');
        const failed = page.locator('#player .ap-overlay-error');
        await timer.filter({ hasText: /^-00:00$/ }).or(failed).waitFor({ state: 'attached' }).catch(async (err: Error) => {
          const shown = await page.locator('#player .ap-timer').textContent({ timeout: 1000 }).catch(() => 'no timer');
          assert.fail(`the player never reached the end (its timer: ${shown}): ${err.message}\n${problems.join('\n')}`);
        });
        assert.equal(await failed.count(), 0, `the player failed to load the recording\n${problems.join('\n')}`);
        // The terminal draws what it was fed on its next animation frame: one frame later, its rows hold the text.
        await page.evaluate('new Promise((resolve) => requestAnimationFrame(resolve))');
        // Its last frame as text: the commands typed and what they printed.
        const text = (await page.locator('#player .ap-line').allTextContents()).map((line) => line.trimEnd());
        assert.ok(text.includes('typed-42') && text.includes('40 120'), `${text.join('\n')}\n${problems.join('\n')}`);
        assert.equal(await page.locator('#player .ap-time-elapsed').textContent(), atEnd);
        assert.deepEqual(problems, []);
        const screenshot = join(artifacts, 'bastion-recording.png');
        await page.screenshot({ path: screenshot });
        assert.ok(statSync(screenshot).size > 10_000, 'a screenshot of the player');
      } catch (err) {
        // What the page showed when it went wrong, beside the screenshot of when it went right.
        await page.screenshot({ path: failedShot }).catch(() => {});
        throw err;
      }
    } finally {
      await browser.close();
    }
  });

  test('the connection onward gets TCP_NODELAY as it opens', async () => {
    // Without it each session through the bastion waited some 90 ms for Nagle's algorithm (npm run bench -- --attacks).
    const spied = await startStep('20-bastion.ts', { preload: ['./test/spy-nodelay.ts'], env: { SSH_AUTH_SOCK: '',
      SSH_AUTHORIZED_KEYS_DIR: bastionKeys, KNOWN_HOSTS: knownHosts, RECORDINGS_DIR: join(dir, 'spied-recordings'),
      RECORDINGS_PORT: '0', TARGET: target() } });
    try {
      assert.deepEqual(ssh(spied.port, 'alice', ['-A', 'echo onward']), { stdout: 'onward\n', stderr: '', status: 0 });
      await logged(spied, new RegExp(`^setNoDelay\\(true\\) for (127\\.0\\.0\\.1|::1):${inner.port}$`, 'm'));
    } finally {
      await spied.stop();
    }
  });

  test('audit evasion: long and padded commands and TERMs recorded whole, listed cut; NUL bytes cost nothing; RECORDING_MAX, RECORDINGS_PER_USER and RECORDINGS_MAX hold', async () => {
    const folder = join(dir, 'bounded-recordings');
    const bounded = await startStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
      KNOWN_HOSTS: knownHosts, RECORDINGS_DIR: folder, RECORDINGS_PORT: '0', TARGET: target(), RECORDING_MAX: '1',
      RECORDINGS_MAX: '8', RECORDINGS_PER_USER: '5' } });
    const client = await login(bounded.port);
    try {
      // A 17 KiB command (the title) and a 17 KiB terminal name: each header was over the 16 KiB the page reads.
      const long = `: ${'x'.repeat(17 * 1024)}; echo long`;
      assert.equal((await execute(client, long)).out, 'long\n');
      const term = await execute(client, 'echo term', { pty: { term: 't'.repeat(17 * 1024), cols: 80, rows: 24, width: 0, height: 0 } });
      assert.equal(term.out, 'term\r\n');
      // A megabyte of NUL bytes, which a terminal ignores: six bytes each in JSON, until they were left out.
      assert.equal((await execute(client, 'head -c 1000000 /dev/zero; echo zeros')).out.length, 1_000_006);
      // Over RECORDING_MAX (1 MiB): the user gets it all, the recording its first MiB and a marker.
      assert.equal((await execute(client, 'head -c 2000000 /dev/zero | tr "\\0" y')).out.length, 2_000_000);
      await logged(bounded, /recording \S+\.cast: recording cut at 1 MiB \(RECORDING_MAX\): the rest of the session is not recorded$/m);
      // A command padded past what the log and the title show: the recording's first marker holds it whole.
      const padded = `${' '.repeat(400)}echo padded`;
      assert.equal((await execute(client, padded)).out, 'padded\n');
      await logged(bounded, new RegExp(`alice → ${target()}, recorded in \\S+\\.cast: {200}`));
      const files = () => readdirSync(folder).sort();
      // Each recording once the bastion has written its last event (the files are written as the output passes).
      const written = await waitFor('the five recordings, written', () => {
        const all = files().map((name) => recordedIn(folder, name));
        const find = (text: string) => all.find((each) => each.includes(text));
        const found = [find('"o","long\\n"]'), find('"o","term\\r\\n"]'), find('zeros'), find('"m","recording cut at'), find('"o","padded\\n"]')];
        return all.length === 5 && found.every(Boolean) ? found as string[] : undefined;
      });
      assert.deepEqual(JSON.parse(written[4]!.split('\n')[1]!), [0, 'm', `command: ${padded}`]);
      assert.deepEqual(JSON.parse(written[0]!.split('\n')[1]!), [0, 'm', `command: ${long}`]);
      for (const each of written) assert.ok(each.indexOf('\n') < 1024, `a header of ${each.indexOf('\n')} bytes`);
      const [, , zeros, cut] = written;
      assert.ok(zeros!.length < 2000 && zeros!.includes('zeros'), `${zeros!.length} bytes recorded of NUL bytes and "zeros"`);
      assert.ok(cut!.length <= 1024 * 1024 + 200, `${cut!.length} bytes`);
      assert.deepEqual(JSON.parse(cut!.trimEnd().split('\n').at(-1)!).slice(1),
        ['m', 'recording cut at 1 MiB (RECORDING_MAX): the rest of the session is not recorded']);
      // Five of alice's, RECORDINGS_PER_USER: her next session is refused, as it could not be recorded; bob's is not
      // (the inner server then refuses bob, who may log in to the bastion alone).
      const unrecorded = { out: '', err: 'bastion: no session can be recorded now\n', code: 1, signal: undefined };
      assert.deepEqual(await execute(client, 'echo unrecorded'), unrecorded);
      await logged(bounded, /alice's session refused: the recordings folder holds 5 recordings of alice's, with sessions under way \(RECORDINGS_PER_USER\): none of theirs can be added$/m);
      const bob = await login(bounded.port, agentSocket, 'bob');
      try {
        assert.deepEqual(await execute(bob, 'echo bob'), { out: '', err: `bastion: ${target()} refused bob with the keys in your agent\n`, code: 1, signal: undefined });
        // A recording whose header is no JSON, one that cannot be read at all (still listed, each with why), and
        // carol's: eight kept, RECORDINGS_MAX, and no session of anyone's can be recorded.
        writeFileSync(join(folder, '2026-01-02T03-04-05Z-mallory-0123abcd.cast'), `{${'"'.repeat(20_000)}\n`);
        mkdirSync(join(folder, '2026-01-02T03-04-06Z-mallory-4567cdef.cast'));
        writeFileSync(join(folder, '2026-01-02T03-04-07Z-carol-89ab0123.cast'), '{"version":2,"width":80,"height":24,"timestamp":0,"title":"carol"}\n');
        assert.deepEqual(await execute(bob, 'echo bob'), unrecorded);
        await logged(bounded, /bob's session refused: the recordings folder holds 8 recordings, with sessions under way \(RECORDINGS_MAX\): none can be added$/m);
      } finally {
        bob.end();
      }
      const [, base, token] = /recordings: (http:\/\/127\.0\.0\.1:\d+)\/\?token=([0-9a-f]{32})/.exec(bounded.output())!;
      const get = (path: string) => fetch(`${base}${path}`, { headers: { cookie: `token=${token}` } });
      const list = await (await get('/')).text();
      const rows = list.split('\n').filter((line) => line.startsWith('<tr><td'));
      assert.equal(rows.length, 8, list.slice(0, 2000));
      assert.equal(rows.filter((row) => row.includes('…</a>')).length, 2, 'the long command and the padded one, cut');
      assert.equal(rows.filter((row) => row.includes(' s (cut)</td>')).length, 1, 'the recording RECORDING_MAX cut');
      assert.ok(rows.some((row) => row.startsWith('<tr><td>mallory</td><td>2026-01-02T03:04:05.000Z</td>')
        && row.includes('(its header cannot be read)')), 'the header that is no JSON');
      assert.ok(rows.some((row) => row.includes('2026-01-02T03-04-06Z-mallory-4567cdef.cast: cannot be read (it is a folder, not a file)')));
      for (const name of files()) {
        const play = await get(`/play/${name}`);
        assert.equal(play.status, 200, name);
        if (name.endsWith('4567cdef.cast')) assert.match(await play.text(), /This recording cannot be read: it is a folder, not a file\./);
        else await play.arrayBuffer();
      }
    } finally {
      client.end();
      await bounded.stop();
    }
    assert.doesNotMatch(bounded.output(), /^internal error/m);
  });

  test('a bastion killed mid-session has already written what the session printed', async () => {
    const doomed = await startStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
      KNOWN_HOSTS: knownHosts, RECORDINGS_DIR: recordings, TARGET: target() } });
    const client = await login(doomed.port);
    try {
      const before = casts();
      void execute(client, 'echo before the crash; sleep 30').catch(() => {});
      const name = await waitFor('the recording', () => casts().find((each) => !before.includes(each)));
      await waitFor('the output in it', () => readFileSync(join(recordings, name), 'utf8').includes('"o","before the crash\\n"]') || undefined, 5000);
      await doomed.stop('SIGKILL');
      const [header, ...events] = readFileSync(join(recordings, name), 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line));
      assert.equal(header.version, 2);
      assert.deepEqual(events.map(([, code, data]) => [code, data]), [['m', 'command: echo before the crash; sleep 30'], ['o', 'before the crash\n']]);
    } finally {
      client.end();
      await doomed.stop();
    }
  });

  test('the inner server dies mid-session: the user gets a line and status 255, and the bastion goes on', async () => {
    const other = await startStep('14-real-shell.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: innerKeys, SHELL: '/bin/sh', HOME: dir } });
    writeFileSync(join(dir, 'known_hosts2'), execFileSync('ssh-keyscan', ['-p', String(other.port), 'localhost'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    const second = await startStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
      KNOWN_HOSTS: join(dir, 'known_hosts2'), RECORDINGS_DIR: recordings, RECORDINGS_PORT: '0', TARGET: `localhost:${other.port}` } });
    try {
      const client = await login(second.port);
      const pending = execute(client, 'echo started; sleep 30');
      const name = await waitFor('the session', () => /, recorded in (\S+\.cast): echo started; sleep 30$/m.exec(second.output())?.[1]);
      // The bastion records what it passes on to the user as it passes it on: once 'started' is in the recording, it
      // is on its way to the user, ahead of anything the bastion says when the inner server goes.
      await waitFor('the output in the recording', () => recorded(name).includes('"started') || undefined);
      await other.stop('SIGKILL');
      const result = await pending;
      assert.deepEqual(result, { out: 'started\n', err: `bastion: the connection to localhost:${other.port} was lost\n`, code: 255, signal: undefined });
      client.end();
      const again = ssh(second.port, 'alice', ['-A', 'echo hi']);
      assert.equal(again.status, 1);
      assert.match(again.stderr, new RegExp(`^bastion: cannot reach localhost:${other.port}: connect ECONNREFUSED .*\n$`));
    } finally {
      await second.stop();
      await other.stop();
    }
    assert.doesNotMatch(second.output(), /^internal error/m);
  });

  test('hostile: sessions asked for all at once stop at RECORDINGS_PER_USER and RECORDINGS_MAX, not past them', async () => {
    // Each session was checked against the folder as it was before the burst, its file made only once logged in
    // onward, one at a time: 30 asked for at once were all recorded, past RECORDINGS_PER_USER 5 (the red team's
    // 1200 at once, against 1000, filled the folder for everyone).
    const folder = join(dir, 'burst-recordings');
    mkdirSync(folder);
    // carol's four, already there: RECORDINGS_MAX (8) leaves room for four more.
    for (let i = 0; i < 4; i++) writeFileSync(join(folder, `2026-01-02T03-04-0${i}Z-carol-0000000${i}.cast`), '{"version":2,"width":80,"height":24,"timestamp":0}\n');
    const bounded = await startStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
      KNOWN_HOSTS: knownHosts, RECORDINGS_DIR: folder, RECORDINGS_PORT: '0', TARGET: target(), ...many,
      RECORDINGS_MAX: '8', RECORDINGS_PER_USER: '5' } });
    const client = await login(bounded.port);
    const burst = async () => {
      const results = await Promise.all(Array.from({ length: 30 }, () => execute(client, 'echo recorded')));
      for (const result of results) {
        if (result.code === 0) assert.deepEqual(result, { out: 'recorded\n', err: '', code: 0, signal: undefined });
        else assert.deepEqual(result, { out: '', err: 'bastion: no session can be recorded now\n', code: 1, signal: undefined });
      }
      return results.filter((result) => result.code === 0).length;
    };
    const alices = () => readdirSync(folder).filter((name) => name.includes('-alice-')).length;
    try {
      assert.equal(await burst(), 4, 'RECORDINGS_MAX: four of 30');
      // (The files of sessions just ended may still be opening.)
      assert.equal(await waitFor('four of alice\'s recordings', () => (alices() >= 4 ? alices() : undefined)), 4);
      await logged(bounded, /alice's session refused: the recordings folder holds 8 recordings, with sessions under way \(RECORDINGS_MAX\): none can be added$/m);
      // carol's taken away: now alice's own bound holds, one more of hers (five).
      for (let i = 0; i < 4; i++) rmSync(join(folder, `2026-01-02T03-04-0${i}Z-carol-0000000${i}.cast`));
      assert.equal(await burst(), 1, 'RECORDINGS_PER_USER: one of 30');
      assert.equal(await waitFor('five of alice\'s recordings', () => (alices() >= 5 ? alices() : undefined)), 5);
      await logged(bounded, /alice's session refused: the recordings folder holds 5 recordings of alice's, with sessions under way \(RECORDINGS_PER_USER\): none of theirs can be added$/m);
    } finally {
      client.end();
      await bounded.stop();
    }
  });

  test('hostile: one user\'s sessions onward stop at ONWARD_SESSIONS_MAX, so that one cannot fill the inner server', async () => {
    // Each session through the bastion is a connection of its own to the inner server, which takes 1000 from everyone
    // together (MAX_CONNECTIONS): the red team's 1000 sleeping sessions of one user's had every other user refused.
    const bounded = await startStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
      KNOWN_HOSTS: knownHosts, RECORDINGS_DIR: join(dir, 'onward-recordings'), RECORDINGS_PORT: '0', TARGET: target(), ...many,
      ONWARD_SESSIONS_MAX: '3' } });
    const clients = [await login(bounded.port), await login(bounded.port)];
    /**
     * A session of `sleep 30` on the inner server, on one of alice's two connections: its channel once open, and
     * what it said on stderr once closed (its refusal, if refused).
     */
    const sleeper = (client: ssh2.Client) => {
      let opened!: (channel: ssh2.ClientChannel) => void;
      const channel = new Promise<ssh2.ClientChannel>((resolve) => (opened = resolve));
      const said = new Promise<string>((resolve, reject) => client.exec('sleep 30', (err, each) => {
        if (err) return reject(err);
        opened(each);
        let text = '';
        each.stderr.on('data', (chunk: Buffer) => (text += chunk));
        each.on('close', () => resolve(text)).resume();
      }));
      return { channel, said };
    };
    try {
      const first = bounded.output().length;
      const sleeping = [0, 1, 2].map((i) => sleeper(clients[i % 2]!));
      for (let i = 0; i < 3; i++) await logged(bounded, new RegExp(`(, recorded in \\S+\\.cast: sleep 30[^]*){${i + 1}}`), first);
      // A fourth, on either connection: refused by the bastion, which says why.
      const why = `bastion: you have 3 sessions on ${target()} (ONWARD_SESSIONS_MAX): end one first\n`;
      assert.equal(await sleeper(clients[0]!).said, why);
      assert.equal(await sleeper(clients[1]!).said, why);
      // One closed by alice: its session onward ends with it, and the next one starts.
      (await sleeping[0]!.channel).close();
      assert.equal(await sleeping[0]!.said, '');
      const after = bounded.output().length;
      void sleeper(clients[1]!).said.catch(() => {});
      await logged(bounded, /, recorded in \S+\.cast: sleep 30$/m, after);
    } finally {
      for (const client of clients) client.end();
      await bounded.stop();
    }
  });
});

describe('step 20 with agent keys restricted to hosts (ssh-add -h), OpenSSH 9.2 and 10.6', { timeout: 180_000 }, () => {
  // The inner server with host keys of its own, so that the agent tells it from the bastion; its own folder and agent.
  const own = temporaryDir();
  const innerHostKeys = join(own, 'inner-host-keys');
  const userKnownHosts = join(own, 'user_known_hosts');
  const agentSocket = join(own, 'agent.sock');
  const agentEnv = { ...process.env, SSH_AUTH_SOCK: agentSocket };
  const agentProcess = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
  let inner: Step;
  const bastionKnownHosts = join(own, 'known_hosts');
  /** The host keys of the step on `port`, as known_hosts lines under the name the user gives it. */
  const named = (name: string, port: number) => execFileSync('ssh-keyscan', ['-p', String(port), '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' }).replace(/^\S+/gm, name);
  before(async () => {
    mkdirSync(innerHostKeys, { mode: 0o700 });
    inner = await startStep('14-real-shell.ts', { env: { HOST_KEYS_DIR: innerHostKeys, SSH_AUTHORIZED_KEYS_DIR: innerKeys,
      SHELL: '/bin/sh', HOME: dir } });
    writeFileSync(bastionKnownHosts, execFileSync('ssh-keyscan', ['-p', String(inner.port), 'localhost'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    await waitFor('the agent\'s socket', () => existsSync(agentSocket) || undefined);
  });
  after(async () => {
    agentProcess.kill();
    await inner?.stop();
  });
  const bastion = useStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
    KNOWN_HOSTS: bastionKnownHosts, get TARGET() { return `localhost:${inner.port}`; } } });
  const refusedOnward = () => `bastion: your agent offers no key for localhost:${inner.port} (ssh-add -h may keep yours to other hosts)\n`;
  /** The user's known_hosts, naming the bastion "bastion" and the inner server "inner", as ssh-add -h looks them up. */
  const knownHostsText = () => named('bastion', bastion().port) + named('inner', inner.port);

  test('OpenSSH 9.2: -h bastion -h \'bastion>inner\' logs in through the bastion; -h bastion alone is refused onward, clearly', async () => {
    writeFileSync(userKnownHosts, knownHostsText());
    const restrict = (...hosts: string[]) => {
      execFileSync('ssh-add', ['-q', '-D'], { env: agentEnv, stdio: 'ignore' });
      execFileSync('ssh-add', ['-q', '-H', userKnownHosts, ...hosts.flatMap((host) => ['-h', host]), key], { env: agentEnv, stdio: 'ignore' });
    };
    const through = () => spawnSync('ssh', [...sshOptions, '-o', 'LogLevel=ERROR', '-A', '-p', String(bastion().port), 'alice@localhost',
      'echo through; exit 3'], { env: agentEnv, encoding: 'utf8', timeout: 30_000 });
    restrict('bastion', 'bastion>inner');
    assert.deepEqual((({ stdout, stderr, status }) => ({ stdout, stderr, status }))(through()), { stdout: 'through\n', stderr: '', status: 3 });
    restrict('bastion');
    // The key still logs the user in to the bastion, which the agent then shows no key it may use onward.
    assert.deepEqual((({ stdout, stderr, status }) => ({ stdout, stderr, status }))(through()), { stdout: '', stderr: refusedOnward(), status: 1 });
    await logged(bastion(), new RegExp(`alice → localhost:${inner.port}: your agent offers no key`));
  });

  test('OpenSSH 10.6: the same, with its own ssh-agent and ssh-add', async () => {
    const home = debianTestingHome();
    const inside = home.slice(debianTesting().length);
    writeFileSync(join(home, 'known_hosts'), knownHostsText());
    writeFileSync(join(home, 'key'), readFileSync(key), { mode: 0o600 });
    /** In the Debian testing root: an agent of its own holding the key restricted to `hosts`, then ssh -A through the bastion. */
    const through = (hosts: string[]) => inDebianTesting(['sh', '-c', [
      `cd ${inside}`,
      'eval "$(ssh-agent -s)" > /dev/null',
      `ssh-add -q -H known_hosts ${hosts.map((host) => `-h '${host}'`).join(' ')} key`,
      `ssh ${sshOptions.join(' ')} -o LogLevel=ERROR -A -p ${bastion().port} alice@localhost 'echo through; exit 3'`,
      'status=$?; ssh-agent -k > /dev/null; exit $status',
    ].join('\n')]);
    assert.deepEqual(await through(['bastion', 'bastion>inner']), { stdout: 'through\n', stderr: '', status: 3 });
    assert.deepEqual(await through(['bastion']), { stdout: '', stderr: refusedOnward(), status: 1 });
  });
});

describe('step 20 and the inner server\'s limits for an address: one user\'s sessions, opened and dropped by the dozen', { timeout: 180_000 }, () => {
  // The inner server with its default limits (PER_SOURCE_MAX_STARTUPS 5, and a penalty for each connection that
  // ends without a login), where bob may log in too; an agent of its own, holding the key both users have.
  const own = temporaryDir();
  const agentSocket = join(own, 'agent.sock');
  const bothKeys = join(own, 'inner-keys');
  const ownKnownHosts = join(own, 'known_hosts');
  let agentProcess: ReturnType<typeof spawn> | undefined;
  let inner: Step;
  before(async () => {
    agentProcess = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
    await waitFor('the agent\'s socket', () => existsSync(agentSocket) || undefined);
    execFileSync('ssh-add', ['-q', key], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket }, stdio: 'ignore' });
    mkdirSync(bothKeys);
    for (const user of ['alice', 'bob']) writeFileSync(join(bothKeys, user), readFileSync(`${key}.pub`));
    inner = await startStep('14-real-shell.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: bothKeys, SHELL: '/bin/sh', HOME: dir } });
    writeFileSync(ownKnownHosts, execFileSync('ssh-keyscan', ['-p', String(inner.port), 'localhost'], { stdio: ['ignore', 'pipe', 'ignore'] }));
  });
  after(async () => {
    agentProcess?.kill();
    await inner?.stop();
  });
  const bastion = useStep('20-bastion.ts', { env: { SSH_AUTH_SOCK: '', SSH_AUTHORIZED_KEYS_DIR: bastionKeys,
    KNOWN_HOSTS: ownKnownHosts, RECORDINGS_DIR: join(own, 'recordings'), RECORDINGS_PORT: '0',
    get TARGET() { return `localhost:${inner.port}`; } } });
  /** alice's command through the bastion, by OpenSSH with her agent forwarded: what it printed, and its status. */
  const through = async () => {
    const child = spawn('ssh', [...sshOptions, '-o', 'LogLevel=ERROR', '-A', '-p', String(bastion().port), 'alice@localhost',
      'echo through'], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket }, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk)).on('error', () => {});
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk)).on('error', () => {});
    const [status] = await once(child, 'close') as [number];
    return [stdout, stderr, status];
  };

  test('hostile: bob\'s sessions, twenty at a time, each closed as the bastion logs him in onward: alice still gets through', async () => {
    // Each of bob's sessions was an onward login cut off halfway, counted by the inner server against the
    // bastion's address: alice got "cannot reach", and the inner server stayed shut to every user for some 20 s.
    const bobs = [await login(bastion().port, agentSocket, 'bob'), await login(bastion().port, agentSocket, 'bob')];
    for (const bob of bobs) bob.on('error', () => {});
    try {
      const churn = () => Promise.all(bobs.flatMap((bob) => Array.from({ length: 10 }, () => new Promise<void>((resolve, reject) =>
        bob.exec('sleep 30', (err, channel) => {
          if (err) return reject(err);
          channel.on('close', () => resolve()).resume();
          // The attack's pace, not a wait: closed while the bastion is logging him in onward.
          setTimeout(() => channel.close(), 5 + Math.random() * 30);
        })))));
      await churn();
      // alice's command while bob goes on, and once he has stopped.
      let done = false;
      const alice = through().finally(() => (done = true));
      for (let round = 0; round < 50 && !done; round++) await churn();
      assert.deepEqual(await alice, ['through\n', '', 0]);
      assert.deepEqual(await through(), ['through\n', '', 0]);
    } finally {
      for (const bob of bobs) bob.end();
    }
    // None of bob's logins onward was cut off halfway: the inner server penalized nobody.
    assert.doesNotMatch(inner.output(), /penalt|refused/i);
  });

  test('hostile: bob\'s agent offers keys the inner server refuses, again and again: after ONWARD_FAILURES_MAX, bob waits, alice gets through, nothing kept', async () => {
    // An empty agent of bob's own: each onward login fails, each counted against the bastion's address.
    const empty = join(own, 'empty.sock');
    const emptyAgent = spawn('ssh-agent', ['-D', '-a', empty], { stdio: 'ignore' });
    try {
      await waitFor('the empty agent\'s socket', () => existsSync(empty) || undefined);
      const bob = await login(bastion().port, empty, 'bob');
      bob.on('error', () => {});
      const said: string[] = [];
      try {
        for (let i = 0; i < 40; i++) {
          said.push(await new Promise<string>((resolve, reject) => bob.exec('true', (err, channel) => {
            if (err) return reject(err);
            let text = '';
            channel.stderr.on('data', (chunk: Buffer) => (text += chunk));
            channel.on('close', () => resolve(text)).resume();
          })));
        }
      } finally {
        bob.end();
      }
      const noKey = `bastion: your agent offers no key for localhost:${inner.port} (ssh-add -h may keep yours to other hosts)\n`;
      const wait = 'bastion: 3 of your logins onward failed in the last minute: try again in a minute\n';
      // Three failures in all (one may be from the test before, whose end cut bob's last login onward off), then a wait.
      const failures = said.filter((text) => text === noKey).length;
      assert.ok(failures >= 1 && failures <= 3, `${failures} failed`);
      assert.deepEqual(said, [...Array(failures).fill(noKey), ...Array(40 - failures).fill(wait)]);
      // Each session refused kept a listener on bob's connection, with all it held, until the connection closed: a
      // red team's 800,000 took the bastion to 3.7 GiB, and their close froze it. Node warns past MAX_SESSIONS + 10.
      assert.doesNotMatch(bastion().errors(), /MaxListenersExceededWarning/);
      assert.deepEqual(await through(), ['through\n', '', 0]);
    } finally {
      emptyAgent.kill();
    }
  });

});
