// Step 16, two factors: a listed key, then a one-time code. OpenSSH answers the code through SSH_ASKPASS with
// what Debian's oathtool computes (as an authenticator app would); ssh2's client for what OpenSSH would not do.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import ssh2 from 'ssh2';
import { code, codeRefusal, fromBase32, PERIOD, toBase32 } from '../shared/login/totp.ts';
import { count, root, ssh, sshOptions, temporaryDir, Terminal, useStep, waitFor } from './helpers.ts';

const dir = temporaryDir();
const keys = join(dir, 'authorized_keys');
const totp = join(dir, 'keys', 'totp');
mkdirSync(keys);
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace'];
for (const user of users) writeFileSync(join(keys, user), readFileSync(join(dir, 'key.pub')));
mkdirSync(totp, { recursive: true });
// Each user's secret, as `npm run totp` writes it (the first test runs it for alice).
for (const user of users.slice(1)) writeFileSync(join(totp, user), `${toBase32(Buffer.from(`secret of ${user}!!!`))}\n`);
const env = { SSH_AUTHORIZED_KEYS_DIR: keys, TOTP_DIR: totp };

/** The code an authenticator app shows for `user` now (or `ago` seconds ago), by oathtool. */
function codeOf(user: string, ago = 0): string {
  const secret = readFileSync(join(totp, user), 'utf8').trim();
  const now = `@${Math.floor(Date.now() / 1000) - ago}`;
  return execFileSync('oathtool', ['--totp', '-b', `--now=${now}`, secret], { encoding: 'utf8' }).trim();
}
/** A code that is none of the three `user`'s could have now. */
const wrongCodeOf = (user: string) => codeOf(user).replace(/^./, (digit) => String((Number(digit) + 5) % 10));

const withKey = ['-i', join(dir, 'key'), '-o', 'IdentitiesOnly=yes'];
const lesson = readFileSync(join(root, 'steps', '16-two-factors.md'), 'utf8');
const partial = 'Authenticated using "publickey" with partial success.';

describe('step 16: a key, then a code', { timeout: 180_000 }, () => {
  const step = useStep('16-two-factors.ts', { env });

  test('npm run totp makes the secret (0600), shows the URI and QR code of the lesson, and never replaces one', () => {
    // As the lesson's reader runs it, in a folder with keys/ (the test's own).
    const run = (user = 'alice') => execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'shared/login/totp-enrol.ts'), user],
      { cwd: dir, env: { ...process.env, TOTP_DIR: 'keys/totp', SSH_AUTHORIZED_KEYS_DIR: keys }, encoding: 'utf8', stdio: 'pipe' });
    const printed = run().replace(/\n$/, '').split('\n');
    const secret = readFileSync(join(totp, 'alice'), 'utf8').trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.equal(statSync(join(totp, 'alice')).mode & 0o777, 0o600);
    // The lesson's transcript: npm's two lines, then the same lines but for the secret and the QR code it makes.
    const block = /<!-- npm run totp -->\n```console\n[^]*?\$ npm run totp -- alice\n([^`]*)```/.exec(lesson)![1]!.replace(/\n$/, '').split('\n');
    const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; scripts: { totp: string } };
    assert.deepEqual(block.slice(0, 4), ['', `> conch-steps@${script.version} totp`, `> ${script.scripts.totp} alice`, '']);
    const shown = block.slice(4);
    const qr = (lines: string[]) => lines.slice(2, lines.indexOf('', 2));
    const lessonSecret = /secret=([A-Z2-7]+)&/.exec(shown.join('\n'))![1]!;
    assert.deepEqual(printed.filter((line) => !qr(printed).includes(line)).map((line) => line.replaceAll(secret, 'SECRET')),
      shown.filter((line) => !qr(shown).includes(line)).map((line) => line.replaceAll(lessonSecret, 'SECRET')));
    const shape = (lines: string[]) => lines.map((row) => (/^[█▀▄ ]+$/u.test(row) ? [...row].length : row));
    assert.deepEqual(shape(qr(printed)), shape(qr(shown)));
    assert.ok(qr(printed).length >= 11);
    assert.throws(run, (err: { stderr: string }) => err.stderr.includes('keys/totp/alice exists: alice has a secret already'));
    assert.equal(readFileSync(join(totp, 'alice'), 'utf8').trim(), secret);
    // A user with no key listed gets the secret, and a word that the code alone lets nobody in.
    const keyless = run('keyless').split('\n');
    assert.deepEqual(keyless.slice(-3), [
      'note: keyless has no key in authorized_keys/keyless yet, and step 16 asks', // shown from the folder it runs in
      'for one before the code: list a key there, as step 09 does, or the code lets no one in', '']);
  });

  test('in a terminal: partial success, the prompt, the code typed, and in', async () => {
    const terminal = new Terminal(['ssh', ...sshOptions, ...withKey, '-p', String(step().port), 'alice@localhost', 'whoami'], {});
    try {
      await waitFor('the prompt', () => terminal.screen().at(-1)?.endsWith('Verification code:') || undefined);
      terminal.sendKeys('-l', codeOf('alice'));
      terminal.sendKeys('Enter');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 0);
      // What the lesson shows, less its command line (this terminal runs ssh itself).
      const shown = /<!-- two factors -->\n```console\n\$ [^\n]*\n([^`]*)```/.exec(lesson)![1]!.trimEnd().split('\n');
      assert.deepEqual(terminal.screen(), shown);
    } finally {
      terminal.close();
    }
  });

  test('through SSH_ASKPASS: the code logs in once; used again, two steps old, or wrong, it is refused', async () => {
    const code = codeOf('bob');
    // What ssh says of the first factor, it says at LogLevel VERBOSE (ssh -v) and above.
    const verbose = await ssh(step().port, 'bob', code, [...withKey, '-o', 'LogLevel=VERBOSE', 'whoami']);
    assert.deepEqual([verbose.stdout, verbose.status], ['bob\n', 0]);
    assert.deepEqual(verbose.stderr.split('\r\n').slice(0, 2), [partial,
      `Authenticated to localhost ([127.0.0.1]:${step().port}) using "keyboard-interactive".`]);
    const refused = { stdout: '', stderr: 'bob@localhost: Permission denied (keyboard-interactive).\r\n', status: 255 };
    for (const [typed, why] of [[code, 'a code used already'], [codeOf('bob', 60), 'a wrong code'], [wrongCodeOf('bob'), 'a wrong code']]) {
      // One line for the connection (ssh asks three times, and the log says "repeated").
      const line = new RegExp(`code refused for bob: ${why}$`, 'gm');
      const before = count(step(), line);
      assert.deepEqual(await ssh(step().port, 'bob', typed!, [...withKey, 'whoami']), refused);
      await waitFor(why!, () => (count(step(), line) === before + 1) || undefined);
    }
  });

  test('a password, or a code without the key first, is not a way in', async () => {
    const result = await ssh(step().port, 'carol', 'wonderland', ['-o', 'PubkeyAuthentication=no', 'whoami']);
    assert.deepEqual(result, { stdout: '', stderr: 'carol@localhost: Permission denied (publickey).\r\n', status: 255 });
    // ssh2's client goes straight to keyboard-interactive, with the right code: refused, the key comes first.
    const answer = await new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      client.on('ready', () => (client.end(), resolve('in')));
      client.on('error', (err) => resolve(err.message));
      client.on('keyboard-interactive', (name, instructions, lang, prompts, finish) => finish([codeOf('carol')]));
      client.connect({ host: '127.0.0.1', port: step().port, username: 'carol', tryKeyboard: true,
        authHandler: ['keyboard-interactive'] });
    });
    assert.equal(answer, 'All configured authentication methods failed');
  });

  test('an empty user name, without a key, is not asked for a code', async () => {
    let asked = false;
    const answer = await new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      client.on('ready', () => (client.end(), resolve('in')));
      client.on('error', (err) => resolve(err.message));
      client.on('keyboard-interactive', (name, instructions, lang, prompts, finish) => ((asked = true), finish(['123456'])));
      client.connect({ host: '127.0.0.1', port: step().port, username: '', tryKeyboard: true, authHandler: ['keyboard-interactive'] });
    });
    assert.deepEqual([answer, asked], ['All configured authentication methods failed', false]);
  });

  test('a user with a key and no secret is told nothing, and the log says what to do', async () => {
    writeFileSync(join(keys, 'gina'), readFileSync(join(dir, 'key.pub')));
    const result = await ssh(step().port, 'gina', '123456', [...withKey, 'whoami']);
    assert.equal(result.status, 255);
    await waitFor('the log line', () => count(step(), /code refused for gina: gina has no secret \(npm run totp -- gina makes one\)$/gm) || undefined);
  });
});

describe('step 16: wrong codes are failed logins', { timeout: 120_000 }, () => {
  const step = useStep('16-two-factors.ts', { env: { ...env, MAX_AUTH_TRIES: '1' } });

  test('with MAX_AUTH_TRIES=1: a key and a good code log in (a partial success is no failure); a wrong code ends the connection', async () => {
    assert.equal((await ssh(step().port, 'dave', codeOf('dave'), [...withKey, 'whoami'])).stdout, 'dave\n');
    const result = await ssh(step().port, 'erin', wrongCodeOf('erin'), [...withKey, 'whoami']);
    assert.equal(result.status, 255);
    await waitFor('the log line', () => count(step(), /^\S+ 1 failed logins \(MAX_AUTH_TRIES\): closing$/gm) || undefined);
    assert.equal(count(step(), /code refused for erin: a wrong code$/gm), 1);
  });
});

describe('step 16: an address that keeps sending wrong codes waits', { timeout: 120_000 }, () => {
  const step = useStep('16-two-factors.ts', { env: { ...env, AUTH_PENALTY_MAX: '1' } });

  test('past ten connections with wrong codes, answers to the address are delayed, as for wrong passwords', async () => {
    for (let i = 0; i < 12; i++) {
      await new Promise<void>((resolve) => {
        const client = new ssh2.Client();
        client.on('ready', () => assert.fail('a wrong code logged in'));
        client.on('error', () => resolve());
        client.on('close', () => resolve());
        client.on('keyboard-interactive', (name, instructions, lang, prompts, finish) => finish([wrongCodeOf('frank')]));
        client.connect({ host: '127.0.0.1', port: step().port, username: 'frank', privateKey: readFileSync(join(dir, 'key')),
          tryKeyboard: true });
      });
    }
    await waitFor('the penalty', () => count(step(), /this address keeps failing to log in: answers to it now wait, up to 1 s$/gm) || undefined);
  });
});

describe('step 16: wrong codes for one user, from many addresses, lock that user\'s codes', { timeout: 120_000 }, () => {
  const step = useStep('16-two-factors.ts', { env: { ...env, AUTH_PENALTY_MAX: '0', SOURCE_PENALTY_MAX: '0' } });

  test('past ten wrong codes from four addresses, even the right code is refused, and the log says so', async () => {
    const tryCode = (typed: string, localAddress: string, username = 'grace') => new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      client.on('ready', () => (client.end(), resolve('in')));
      client.on('error', () => resolve('refused'));
      client.on('keyboard-interactive', (name, instructions, lang, prompts, finish) => finish([typed]));
      client.connect({ host: '127.0.0.1', port: step().port, username, localAddress, tryKeyboard: true,
        privateKey: readFileSync(join(dir, 'key')), authHandler: ['publickey', 'keyboard-interactive'] });
    });
    for (let i = 0; i < 11; i++) assert.equal(await tryCode(wrongCodeOf('grace'), `127.0.0.${2 + (i % 4)}`), 'refused');
    await waitFor('the lock', () => count(step(), /code refused for grace: a wrong code \(codes for grace are now refused for 30 s\)$/gm) || undefined);
    assert.equal(await tryCode(codeOf('grace'), '127.0.0.9'), 'refused');
    await waitFor('the refusal', () => count(step(), /^127\.0\.0\.9:\d+ code refused for grace: too many wrong codes for grace lately: codes refused for \d+ s more$/gm) || undefined);
    // Another user, from the same address, is not touched.
    assert.equal(await tryCode(codeOf('erin'), '127.0.0.9', 'erin'), 'in');
  });
});

describe('shared/login/totp.ts', () => {
  test('RFC 6238\'s SHA-1 test vectors (the last six digits), and base32 both ways', () => {
    const secret = Buffer.from('12345678901234567890');
    const vectors: [number, string][] = [[59, '287082'], [1111111109, '081804'], [1111111111, '050471'],
      [1234567890, '005924'], [2000000000, '279037'], [20000000000, '353130']];
    for (const [time, expected] of vectors) assert.equal(code(secret, Math.floor(time / PERIOD)), expected, String(time));
    assert.equal(toBase32(secret), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    assert.deepEqual(fromBase32('gezd gnbv gy3t qojq gezd gnbv gy3t qojq===='), secret);
    assert.equal(fromBase32('not base32!'), undefined);
  });

  /** A TOTP_DIR of the test's own, holding `secret` for `user`; the variable is put back after the test. */
  function secretOnly(t: TestContext, user: string, secret: Buffer): void {
    const folder = temporaryDir();
    const before = process.env.TOTP_DIR;
    process.env.TOTP_DIR = folder;
    t.after(() => (before === undefined ? delete process.env.TOTP_DIR : (process.env.TOTP_DIR = before)));
    writeFileSync(join(folder, user), toBase32(secret));
  }

  test('the code before, now and after are taken, each once and in order; two away, or anything else, never', (t) => {
    const secret = Buffer.from('another secret, 20 b');
    secretOnly(t, 'henry', secret);
    const now = 1_800_000_000_000;
    const at = (steps: number) => code(secret, Math.floor(now / 1000 / PERIOD) + steps);
    for (const typed of ['', 'abcdef', '1'.repeat(100_000), `${at(0)}x`, at(-2), at(2)]) {
      assert.equal(codeRefusal('henry', typed, now), 'a wrong code', typed.slice(0, 20));
    }
    assert.equal(codeRefusal('henry', at(-1), now), undefined);
    assert.equal(codeRefusal('henry', ` ${at(0).slice(0, 3)} ${at(0).slice(3)} `, now), undefined); // spaces are fine
    assert.equal(codeRefusal('henry', at(-1), now), 'a code used already');
    assert.equal(codeRefusal('henry', at(1), now), undefined);
    assert.equal(codeRefusal('henry', at(0), now), 'a code used already'); // older than one taken
    assert.equal(codeRefusal('../henry', at(0), now), '../henry has no secret (npm run totp -- ../henry makes one)');
  });

  test('wrong codes lock the user\'s codes, right or wrong, for longer and longer, and are forgotten with time', (t) => {
    const secret = Buffer.from('yet another secret!!');
    secretOnly(t, 'ivy', secret);
    let now = 1_900_000_000_000;
    const right = () => code(secret, Math.floor(now / 1000 / PERIOD));
    for (let i = 0; i < 10; i++) assert.equal(codeRefusal('ivy', 'wrong!', now), 'a wrong code', String(i));
    assert.equal(codeRefusal('ivy', 'wrong!', now), 'a wrong code (codes for ivy are now refused for 30 s)');
    now += 10_000;
    assert.equal(codeRefusal('ivy', right(), now), 'too many wrong codes for ivy lately: codes refused for 20 s more');
    now += 20_000;
    // Twice as long, less what 30 s have forgotten (a twentieth of a wrong code): 30 s x 2^0.95.
    assert.equal(codeRefusal('ivy', 'wrong!', now), 'a wrong code (codes for ivy are now refused for 58 s)');
    now += 60_000;
    // In a while, each wrong code is forgotten: after ten minutes a wrong code locks for less.
    now += 3 * 600_000;
    assert.equal(codeRefusal('ivy', 'wrong!', now), 'a wrong code');
    now += 30_000 * 2;
    // A right code clears what was counted.
    assert.equal(codeRefusal('ivy', right(), now), undefined);
    for (let i = 0; i < 10; i++) assert.equal(codeRefusal('ivy', 'wrong!', now), 'a wrong code', `again ${i}`);
  });
});
