// Steps 08-10, beyond the series: commands with an exit status, public keys, a full-screen app.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import type { ClientChannel, ParsedKey, PublicKeyAuthMethod } from 'ssh2';
import { debianTestingCommand, quiet, root, ssh, ssh2Login, sshOptions, temporaryDir, Terminal, todaysSsh, todaysSshRun, useStep, waitFor } from './helpers.ts';

/** Logs in with the ssh2 client and runs `command`, sending `input` and EOF; resolves with the output and exit. */
async function execWithSsh2(port: number, command: string, input: Buffer) {
  const client = await ssh2Login(port);
  try {
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel))));
    const chunks: Buffer[] = [];
    let exitCode: number | undefined;
    channel.on('data', (chunk: Buffer) => chunks.push(chunk));
    channel.on('exit', (code: number) => (exitCode = code));
    channel.end(input);
    await new Promise((resolve) => channel.once('close', resolve));
    return { output: Buffer.concat(chunks), exitCode };
  } finally {
    client.end();
  }
}

describe('step 08: exec requests', { timeout: 60_000 }, () => {
  const step = useStep('08-exec-requests.ts');
  const run = (command: string, input = '', user = 'alice', password = 'wonderland') =>
    ssh(step().port, user, password, [command], input);

  test('echo prints its arguments and exits 0', async () => {
    assert.deepEqual(await run('echo hello world'), { stdout: 'hello world\n', stderr: '', status: 0 });
  });

  test('the exit status reaches the client', async () => {
    assert.deepEqual(await run('exit 3'), { stdout: '', stderr: '', status: 3 });
    assert.deepEqual(await run('exit'), { stdout: '', stderr: '', status: 0 });
  });

  test('an unknown command says so on stderr and exits 127', async () => {
    assert.deepEqual(await run('rm -rf /'), { stdout: '', stderr: 'rm: command not found\n', status: 127 });
  });

  test('arguments are split as a shell splits quoted words, and nothing is expanded', async () => {
    assert.equal((await run(`echo 'a  b' "c\\"d" e\\ f $HOME *`)).stdout, 'a  b c"d e f $HOME *\n');
    assert.deepEqual(await run(`echo 'oops`), { stdout: '', stderr: 'sh: unterminated quoted string\n', status: 2 });
  });

  test('whoami is the user who logged in, and date is the time', async () => {
    assert.equal((await run('whoami')).stdout, 'alice\n');
    assert.equal((await run('whoami', '', 'bob', 'builder')).stdout, 'bob\n');
    const date = (await run('date')).stdout;
    assert.match(date, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\n$/);
    assert.ok(Math.abs(Date.parse(date) - Date.now()) < 60_000, date);
  });

  test('cat copies piped input to its output until EOF', async () => {
    assert.deepEqual(await run('cat', 'hello\nworld\n'), { stdout: 'hello\nworld\n', stderr: '', status: 0 });
  });

  test('the ssh2 client gets every byte of a megabyte back through cat, then exit status 0', async () => {
    const data = randomBytes(1024 * 1024);
    const { output, exitCode } = await execWithSsh2(step().port, 'cat', data);
    assert.ok(output.equals(data), `got ${output.length} bytes`);
    assert.equal(exitCode, 0);
  });

  test('a shell request still gets the echo protocol', async () => {
    const result = await todaysSshRun(step().port, 'alice', 'wonderland', ['-T'], 'hi\n');
    assert.deepEqual(result, { stdout: 'Echo protocol connected\r\nhi\n', stderr: '', status: 255 });
  });
});

describe('step 09: public key authentication', { timeout: 90_000 }, () => {
  const dir = temporaryDir();
  const keysDir = join(dir, 'authorized_keys');
  mkdirSync(keysDir);
  const keygen = (name: string, ...args: string[]) => {
    const file = join(dir, name);
    const result = spawnSync('ssh-keygen', ['-q', '-N', '', '-C', name, '-f', file, ...args]);
    assert.equal(result.status, 0, String(result.stderr));
    return file;
  };
  const ed25519 = keygen('alice-ed25519', '-t', 'ed25519');
  const ecdsa = keygen('alice-ecdsa', '-t', 'ecdsa', '-b', '256');
  const rsa = keygen('alice-rsa', '-t', 'rsa', '-b', '3072');
  const bobKey = keygen('bob-ed25519', '-t', 'ed25519');
  const strangerKey = keygen('stranger-ed25519', '-t', 'ed25519');
  const pub = (file: string) => readFileSync(`${file}.pub`, 'utf8');
  writeFileSync(join(keysDir, 'alice'),
    `# alice's keys\n${pub(ed25519)}this line is not a key\n${pub(ecdsa)}\n${pub(rsa)}`);
  writeFileSync(join(keysDir, 'bob'), pub(bobKey));

  const step = useStep('09-public-key-auth.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: keysDir } });
  /** Waits until the step has logged a line that ends with `text`. */
  const logged = (text: string) => waitFor(text, () => step().output().split('\n').some((line) => line.endsWith(` ${text}`)) || undefined);
  /** `ssh -i KEY USER@localhost whoami`, keys only: no password is tried. */
  const withKey = (user: string, key: string, ...options: string[]) => ssh(step().port, user, 'unused', [
    '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'PreferredAuthentications=publickey',
    ...options, 'whoami']);

  for (const [type, key] of [['Ed25519', ed25519], ['ECDSA', ecdsa], ['RSA (SHA-2)', rsa]] as const) {
    test(`an ${type} key listed for alice logs in as alice`, async () => {
      assert.deepEqual(await withKey('alice', key), { stdout: 'alice\n', stderr: '', status: 0 });
    });
  }

  test('a key that is not listed, or listed for another user, is refused, and the log says why', async () => {
    const refused = { stdout: '', stderr: 'alice@localhost: Permission denied (publickey,password).\r\n', status: 255 };
    assert.deepEqual(await withKey('alice', strangerKey), refused);
    assert.deepEqual(await withKey('alice', bobKey), refused);
    assert.deepEqual(await withKey('bob', bobKey), { stdout: 'bob\n', stderr: '', status: 0 });
    await logged(`key ${keyFingerprint(strangerKey)} refused for alice: not in the user's authorized_keys`);
    await logged(`key ${keyFingerprint(bobKey)} refused for alice: not in the user's authorized_keys`);
    assert.ok(!step().output().includes(`key ${keyFingerprint(bobKey)} refused for bob`), 'bob\'s own key is not refused');
  });

  test('an edit to a user\'s file counts at the next login, even one that keeps its size', async () => {
    const bobFile = join(keysDir, 'bob');
    assert.equal((await withKey('bob', bobKey)).status, 0);
    // Another Ed25519 key with a comment as long: the file keeps its size, and likely its time stamp too.
    writeFileSync(bobFile, pub(strangerKey).replace('stranger-ed25519', 'bob-new-key'));
    assert.equal(readFileSync(bobFile).length, pub(bobKey).length);
    try {
      assert.equal((await withKey('bob', bobKey)).status, 255, 'the key taken out is refused');
      assert.deepEqual(await withKey('bob', strangerKey), { stdout: 'bob\n', stderr: '', status: 0 });
    } finally {
      writeFileSync(bobFile, pub(bobKey));
    }
    assert.equal((await withKey('bob', bobKey)).status, 0, 'and put back, it logs in again');
  });

  test('server-sig-algs: the step names to OpenSSH 9.2 and 10.6 exactly the key algorithms it takes, no more', async () => {
    // Sent after the key exchange, before any login: the client prints it with -v (no password: BatchMode).
    const named = (stderr: string) => /server-sig-algs=<([^>]*)>/.exec(stderr)?.[1]?.split(',');
    const args = ['-v', '-o', 'BatchMode=yes', '-o', 'PreferredAuthentications=password', 'true'];
    for (const result of [await ssh(step().port, 'alice', 'unused', args), await todaysSshRun(step().port, 'alice', 'unused', args)]) {
      assert.equal(result.status, 255);
      const keys = ['ssh-ed25519', 'sk-ssh-ed25519@openssh.com', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
        'sk-ecdsa-sha2-nistp256@openssh.com', 'rsa-sha2-512', 'rsa-sha2-256'];
      assert.deepEqual(named(result.stderr), [...keys, ...keys.map((key) => key.replace(/(@openssh\.com)?$/, '-cert-v01@openssh.com'))],
        result.stderr);
    }
  });

  test('RSA signed with SHA-1 (ssh-rsa) alone: OpenSSH does not even offer the key, since the step names no ssh-rsa', async () => {
    // (A client that signs with SHA-1 anyway is refused, and the log says why: test/attacks.test.ts, with ssh2's client.)
    const result = await withKey('alice', rsa, '-v', '-o', 'PubkeyAcceptedAlgorithms=ssh-rsa');
    assert.equal(result.status, 255);
    assert.match(result.stderr, /no mutual signature algorithm/);
    assert.doesNotMatch(step().output(), new RegExp(`key ${keyFingerprint(rsa).replaceAll('+', '\\+')} refused`));
  });

  test('a user with no file, or a name that is not a file name, has no keys; passwords still work', async () => {
    assert.equal((await withKey('carol', ed25519)).status, 255);
    await logged(`key ${keyFingerprint(ed25519)} refused for carol: the user has no authorized_keys`);
    assert.equal((await withKey('../authorized_keys/alice', ed25519)).status, 255);
    assert.deepEqual(await todaysSshRun(step().port, 'alice', 'wonderland', ['whoami']), { stdout: 'alice\n', stderr: '', status: 0 });
  });

  test('a line that is not a key is skipped and logged with its file and line', async () => {
    const skipped = new RegExp(`^${join(keysDir, 'alice')} line 3: skipped, not a public key`, 'm');
    await waitFor('the line', () => skipped.test(step().output()) || undefined);
  });

  test('a listed key with a wrong signature is refused: the server checks the signature', async () => {
    const parsed = ssh2.utils.parseKey(readFileSync(ed25519));
    assert.ok(!(parsed instanceof Error));
    // The same private key, but this copy signs with 64 bytes of nothing.
    const forged: ParsedKey = Object.create(parsed, { sign: { value: () => Buffer.alloc(64) } });
    const logIn = (key: ParsedKey) => new Promise<string>((resolve) => {
      const method: PublicKeyAuthMethod = { type: 'publickey', username: 'alice', key };
      const client = new ssh2.Client();
      client.once('ready', () => (client.end(), resolve('logged in')));
      // Every error, not only the first: a reset can follow the refusal, and would otherwise go unhandled.
      client.on('error', (err) => resolve(err.message));
      client.connect({ host: '127.0.0.1', port: step().port, username: 'alice',
        authHandler: [method] });
    });
    assert.equal(await logIn(parsed), 'logged in', 'the genuine key logs in this way');
    assert.equal(await logIn(forged), 'All configured authentication methods failed');
    await logged(`key ${keyFingerprint(ed25519)} refused for alice: the signature does not hold`);
  });
});

/** The fingerprint of the key in the file `key` (its `.pub` beside it), as ssh-keygen -l prints it. */
function keyFingerprint(key: string): string {
  return spawnSync('ssh-keygen', ['-lf', `${key}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1]!;
}

describe('step 09 as its lesson has the reader do it, with OpenSSH 10.6', { timeout: 30_000 }, () => {
  const keysDir = temporaryDir();
  const step = useStep('09-public-key-auth.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: keysDir } });

  test('a key made for the tutorial logs in, in two rounds, as ssh -v shows', async () => {
    // ssh-keygen and ssh both run in the Debian testing root, with a home of their own.
    const [keygen] = debianTestingCommand(['sh', '-c', 'mkdir -p ~/.ssh && ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/conch-steps-demo && echo ~']);
    const made = spawnSync(keygen[0]!, keygen.slice(1), { encoding: 'utf8' });
    const home = made.stdout.trim();
    const rootDir = keygen[1]!;
    writeFileSync(join(keysDir, 'alice'), readFileSync(join(rootDir, home, '.ssh', 'conch-steps-demo.pub')));
    const [command, env] = debianTestingCommand(['sh', '-c', `HOME=${home} ssh -v -F /dev/null -o UserKnownHostsFile=/dev/null `
      + `-o StrictHostKeyChecking=no -p ${step().port} -i ${home}/.ssh/conch-steps-demo alice@localhost whoami 2>&1 `
      + `| grep -E 'Offering|accepts|Authenticated|^alice'`]);
    const result = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', env: { ...process.env, ...env } });
    const lesson = readFileSync(join(root, 'steps', '09-public-key-auth.md'), 'utf8');
    const shown = /<!-- key login -->\n```console\n\$ [^\n]*\n([^`]*)```/.exec(lesson)![1]!.trimEnd().split('\n');
    const seen = result.stdout.trimEnd().split(/\r?\n/)
      .map((line) => line.replaceAll(`${home}/`, '/home/you/').replace(/SHA256:\S+/, 'SHA256:...').replace(`:${step().port})`, ':2022)'));
    assert.deepEqual(seen, [...shown, 'alice']);
  });
});

describe('step 09 without an authorized_keys folder', { timeout: 30_000 }, () => {
  const step = useStep('09-public-key-auth.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: join(temporaryDir(), 'none') } });

  test('means no keys, not a crash', async () => {
    const key = join(temporaryDir(), 'key');
    spawnSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', key]);
    const result = await ssh(step().port, 'alice', 'unused', ['-i', key, '-o', 'IdentitiesOnly=yes',
      '-o', 'PreferredAuthentications=publickey', 'whoami']);
    assert.equal(result.status, 255);
    assert.equal((await ssh(step().port, 'alice', 'wonderland', ['whoami'])).stdout, 'alice\n');
  });
});

describe('step 10: window-change', { timeout: 60_000 }, () => {
  const step = useStep('10-window-change.ts');
  const border = (width: number) => `+${'-'.repeat(width - 2)}+`;
  const sizeLine = (cols: number, rows: number) => `This terminal is ${cols} columns wide and ${rows} rows tall.`;
  /**
   * The screen once it shows the app drawn for a `cols` x `rows` terminal, checked row by row. The app draws its rows
   * top to bottom, and the terminal may show a drawing half made: it is whole once its last row is there.
   */
  const drawnFor = async (terminal: Terminal, cols: number, rows: number) => {
    const screen = await waitFor(`a ${cols}x${rows} screen, drawn to its last row`, () => {
      const rowsNow = terminal.screen();
      const drawn = rowsNow.some((row) => row.includes(sizeLine(cols, rows))) && rowsNow.length >= rows
        && rowsNow[rows - 1] === border(cols);
      return drawn ? rowsNow : undefined;
    });
    assert.equal(screen.length, rows, 'the box fills every row');
    assert.equal(screen[0], border(cols));
    assert.equal(screen[rows - 1], border(cols));
    for (const row of screen.slice(1, -1)) assert.match(row, new RegExp(`^\\|.{${cols - 2}}\\|$`));
    assert.ok(screen.some((row) => row.includes('Hello, alice!')));
    return screen;
  };

  test('the app fills the terminal, follows a resize, and q gives the terminal back', async () => {
    const terminal = sshTerminal(step().port);
    try {
      await drawnFor(terminal, 100, 30);
      assert.equal(terminal.display('#{alternate_on} #{cursor_flag}'), '1 0', 'alternate screen, cursor hidden');
      terminal.resize(80, 24);
      await drawnFor(terminal, 80, 24);
      terminal.resize(120, 40);
      await drawnFor(terminal, 120, 40);
      terminal.sendKeys('q');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 0);
      assert.equal(terminal.display('#{alternate_on} #{cursor_flag}'), '0 1', 'normal screen, cursor shown');
      assert.equal(terminal.screen().at(-1), 'Connection to localhost closed.');
      // Quitting with q is the normal end: the log says the connection closed, and nothing about EOF.
      await quiet(step());
      assert.doesNotMatch(step().output(), /channel closed without EOF/);
    } finally {
      terminal.close();
    }
  });

  test('the screen the lesson shows for a 60x12 terminal is the one a 60x12 terminal shows', async () => {
    const lesson = readFileSync(join(root, 'steps', '10-window-change.md'), 'utf8');
    const [, cols, rows, block] = /<!-- screen: (\d+)x(\d+) -->\n```console\n([^`]*)```/.exec(lesson)!;
    const terminal = new Terminal(...todaysSsh([...sshOptions, '-p', String(step().port), 'alice@localhost'], 'wonderland'),
      Number(cols), Number(rows));
    try {
      assert.deepEqual(await drawnFor(terminal, Number(cols), Number(rows)), block!.trimEnd().split('\n'));
      terminal.sendKeys('q');
      await waitFor('ssh to end', () => terminal.exitStatus());
    } finally {
      terminal.close();
    }
  });

  test('Ctrl-C quits too', async () => {
    const terminal = sshTerminal(step().port);
    try {
      await drawnFor(terminal, 100, 30);
      terminal.sendKeys('C-c');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 0);
    } finally {
      terminal.close();
    }
  });

  test('without a pty the app says it needs one and exits 1; commands still run', async () => {
    assert.deepEqual(await todaysSshRun(step().port, 'alice', 'wonderland', ['-T']), {
      stdout: '',
      stderr: 'This app draws on a terminal, and none was requested: connect with ssh -t.\n',
      status: 1,
    });
    assert.equal((await ssh(step().port, 'alice', 'wonderland', ['whoami'])).stdout, 'alice\n');
  });

  test('the ssh2 client sees a redraw with the new size after its window-change request', async () => {
    const client = await ssh2Login(step().port);
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm', cols: 60, rows: 12 }, (err, channel) => (err ? reject(err) : resolve(channel))));
      let received = '';
      channel.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      await waitFor('the first drawing', () => received.includes(sizeLine(60, 12)) || undefined);
      assert.ok(received.startsWith('\x1b[?1049h\x1b[?25l'), 'it switches to the alternate screen first');
      channel.setWindow(20, 70, 0, 0);
      await waitFor('the redraw', () => received.includes(sizeLine(70, 20)) || undefined);
      assert.ok(received.includes(`\x1b[20;1H${border(70)}`), 'the bottom border is on row 20');
      // Quit twice and resize after quitting: the app must not write to the channel it has ended.
      const closed = new Promise((resolve) => channel.once('close', resolve));
      channel.write('q');
      channel.write('q');
      channel.setWindow(30, 90, 0, 0);
      await closed;
      assert.ok(received.endsWith('\x1b[?25h\x1b[?1049l'), 'the screen is given back last');
      const after = await ssh(step().port, 'alice', 'wonderland', ['whoami']);
      assert.equal(after.stdout, 'alice\n', 'the server is still up');
    } finally {
      client.end();
    }
  });
});

/** `ssh -p PORT alice@localhost` (OpenSSH 10.6, as the lessons' transcripts show it) in a 100x30 tmux terminal. */
function sshTerminal(port: number): Terminal {
  return new Terminal(...todaysSsh([...sshOptions, '-p', String(port), 'alice@localhost'], 'wonderland'));
}
