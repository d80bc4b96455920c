// FIDO security keys (sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com) log in: Debian 12's OpenSSH
// 9.2 and OpenSSH 10.6 (the Debian testing root), each with OpenSSH's own software key (sk-dummy, which .ci/sk-dummy
// builds), to the steps that take keys; then what no token would sign, sent through ssh2's client.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { code, PERIOD, toBase32 } from '../shared/login/totp.ts';
import { peakDuring, residentMiB } from './hostile.ts';
import { count, debianTesting, debianTestingHome, inDebianTesting, logged, sshEnv, type SshResult, startStep, type Step, temporaryDir, waitFor } from './helpers.ts';
import { SecurityKeyAgent, softwareSecurityKey } from './security-key-token.ts';

const skDummy = join(process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps', 'sk-dummy', 'sk-dummy.so');

/**
 * The options of every ssh here: no config, no known_hosts, no agent, this one key, and the software token; no
 * password, and a code (step 16's) only when one is `asked`.
 */
const options = (key: string, provider: string, asked = false) => ['-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null',
  '-o', 'StrictHostKeyChecking=no', '-o', 'LogLevel=ERROR', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
  '-o', `SecurityKeyProvider=${provider}`, '-o', 'PasswordAuthentication=no', '-o', `KbdInteractiveAuthentication=${asked ? 'yes' : 'no'}`,
  '-i', key];

describe('FIDO security keys, made and used by OpenSSH with its software token (sk-dummy)', { timeout: 180_000 }, () => {
  const dir = temporaryDir();
  const keys = join(dir, 'authorized_keys');
  // Inside the Debian testing root: its own copies of the token and the keys, for its OpenSSH 10.6.
  let home = '';
  let inside = '';
  const kinds = { ed25519: 'ed25519-sk', ecdsa: 'ecdsa-sk', notouch: 'ed25519-sk', verified: 'ed25519-sk' } as const;
  const kindsWithCerts: string[] = [];
  before(() => {
    assert.ok(existsSync(skDummy), `no ${skDummy}: run sudo bash .ci/sk-dummy once`);
    mkdirSync(keys);
    for (const [name, type] of Object.entries(kinds)) {
      const made = spawnSync('ssh-keygen', ['-q', '-t', type, '-w', skDummy, '-N', '', '-C', name, '-f', join(dir, name),
        ...(name === 'notouch' ? ['-O', 'no-touch-required'] : name === 'verified' ? ['-O', 'verify-required'] : [])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(made.status, 0, made.stderr);
    }
    const pub = (name: string) => readFileSync(join(dir, `${name}.pub`), 'utf8').trim();
    writeFileSync(join(keys, 'alice'), [pub('ed25519'), pub('ecdsa'), `no-touch-required ${pub('notouch')}`,
      `verify-required ${pub('verified')}`, ''].join('\n'));
    // bob lists the untouched key without its option, and a touched one that must also have been verified.
    writeFileSync(join(keys, 'bob'), [pub('notouch'), `verify-required ${pub('ed25519')}`, ''].join('\n'));
    // Step 15's: copies of keys with certificates from a user CA (the untouched one's with the extension
    // no-touch-required, and a second copy of it without; the verifying one's, and a touched one's, with the critical
    // option verify-required).
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'ca')]);
    writeFileSync(join(dir, 'trusted_user_ca_keys'), readFileSync(join(dir, 'ca.pub')));
    writeFileSync(join(dir, 'revoked_certificates'), '');
    for (const [name, from, extra] of [['c-ed25519', 'ed25519', []], ['c-ecdsa', 'ecdsa', []],
      ['c-notouch', 'notouch', ['-O', 'no-touch-required']], ['c-notouch-bare', 'notouch', []],
      ['c-verified', 'verified', ['-O', 'verify-required']], ['c-unverified', 'ed25519', ['-O', 'verify-required']]] as const) {
      copyFileSync(join(dir, from), join(dir, name));
      copyFileSync(join(dir, `${from}.pub`), join(dir, `${name}.pub`));
      const signed = spawnSync('ssh-keygen', ['-q', '-s', join(dir, 'ca'), '-I', name, '-n', 'alice', ...extra, join(dir, `${name}.pub`)],
        { encoding: 'utf8' });
      assert.equal(signed.status, 0, signed.stderr);
      kindsWithCerts.push(name);
    }
    home = debianTestingHome();
    inside = home.slice(debianTesting().length);
    copyFileSync(skDummy, join(home, 'sk-dummy.so'));
    for (const name of [...Object.keys(kinds), ...kindsWithCerts]) {
      copyFileSync(join(dir, name), join(home, name));
      spawnSync('chmod', ['600', join(home, name)]);
      if (name.startsWith('c-')) copyFileSync(join(dir, `${name}-cert.pub`), join(home, `${name}-cert.pub`));
    }
  });

  /**
   * ssh with the key `name` to `step` as `user`, running `command`: Debian 12's client, or today's (10.6). `code`, if
   * given, is what SSH_ASKPASS answers when asked for one (step 16).
   */
  function login(step: Step, user: string, name: string, client: '9.2' | '10.6', command = 'echo hi', code?: string): Promise<SshResult> {
    const args = ['-p', String(step.port), `${user}@localhost`, command];
    const asked = code !== undefined;
    if (client === '10.6') return inDebianTesting(['ssh', ...options(`${inside}/${name}`, `${inside}/sk-dummy.so`, asked), ...args], code ?? '0000');
    const child = spawn('ssh', [...options(join(dir, name), skDummy, asked), ...args], { env: { ...process.env, ...sshEnv(code ?? '0000') },
      stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    return new Promise((resolve) => child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, status });
    }));
  }

  for (const [file, env] of [['09-public-key-auth.ts', {}], ['10-window-change.ts', {}], ['14-real-shell.ts', { SHELL: '/bin/sh' }]] as const) {
    describe(`steps/${file}`, () => {
      let step: Step;
      before(async () => {
        step = await startStep(file, { env: { SSH_AUTHORIZED_KEYS_DIR: keys, ...env } });
      });
      after(async () => {
        await step.stop();
        assert.doesNotMatch(step.output(), /^internal error/m);
      });

      for (const client of ['9.2', '10.6'] as const) {
        test(`OpenSSH ${client}: ed25519-sk and ecdsa-sk keys log in, touched; the log says so, with the counter`, async () => {
          for (const name of ['ed25519', 'ecdsa']) {
            assert.deepEqual(await login(step, 'alice', name, client), { stdout: 'hi\n', stderr: '', status: 0 }, name);
          }
          // sk-dummy always counts 0x12345678.
          assert.ok(count(step, /^127\.0\.0\.1:\d+ authenticated as alice with a security key \(touched, not user-verified, counter 305419896\)$/gm) >= 2);
        });

        test(`OpenSSH ${client}: a key made with no-touch-required logs in only where its line says so; verify-required wants a verified user`, async () => {
          assert.equal((await login(step, 'alice', 'notouch', client)).status, 0);
          assert.equal((await login(step, 'alice', 'verified', client)).status, 0);
          await logged(step, /authenticated as alice with a security key \(not touched \(no user presence\), not user-verified, counter 305419896\)$/m);
          await logged(step, /authenticated as alice with a security key \(touched, user verified, counter 305419896\)$/m);
          const before = step.output().length;
          for (const name of ['notouch', 'ed25519']) {
            const refused = await login(step, 'bob', name, client);
            assert.equal(refused.status, 255);
            assert.match(refused.stderr, /Permission denied \(publickey/);
          }
          await logged(step, /:\d+ security key SHA256:\S+ refused; its signature: not touched \(no user presence\), not user-verified, counter 305419896$/m, before);
          await logged(step, /:\d+ security key SHA256:\S+ refused; its signature: touched, not user-verified, counter 305419896$/m, before);
        });
      }
    });
  }

  // Step 20, the bastion, with no agent forwarded: the login, then its refusal to go on (its own test's).
  const bastion = { SSH_AUTH_SOCK: '', RECORDINGS_DIR: join(dir, 'recordings'), RECORDINGS_PORT: '0', TARGET: 'localhost:1' };
  for (const [file, env] of [['18-ink-app.ts', {}], ['19-git-server.ts', {}], ['20-bastion.ts', bastion]] as const) {
    test(`steps/${file}: an ed25519-sk key logs in (OpenSSH 9.2)`, async () => {
      const step = await startStep(file, { env: { SSH_AUTHORIZED_KEYS_DIR: keys, ...env } });
      try {
        await login(step, 'alice', 'ed25519', '9.2', 'true'); // what the step then says of the command is its own
        await waitFor('the login', () => / authenticated as alice with a security key \(touched, not user-verified, counter 305419896\)$/m.test(step.output()) || undefined);
      } finally {
        await step.stop();
      }
      assert.doesNotMatch(step.output(), /^internal error/m);
    });
  }

  test('steps/16-two-factors.ts: an ed25519-sk key, then the one-time code, logs in (OpenSSH 9.2 and 10.6)', async () => {
    const codes = join(dir, 'totp');
    const secret = randomBytes(20);
    mkdirSync(codes, { mode: 0o700 });
    writeFileSync(join(codes, 'alice'), `${toBase32(secret)}\n`, { mode: 0o600 });
    const step = await startStep('16-two-factors.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: keys, TOTP_DIR: codes } });
    try {
      // Each code is taken once, and in order: the one of now, then the next.
      const now = Math.floor(Date.now() / 1000 / PERIOD);
      for (const [i, client] of (['9.2', '10.6'] as const).entries()) {
        assert.deepEqual(await login(step, 'alice', 'ed25519', client, 'echo hi', code(secret, now + i)), { stdout: 'hi\n', stderr: '', status: 0 }, client);
      }
      assert.equal(count(step, / authenticated as alice with a security key \(touched, not user-verified, counter 305419896\)$/gm), 2);
      // Without the code, the key alone is not enough.
      assert.equal((await login(step, 'alice', 'ed25519', '9.2')).status, 255);
    } finally {
      await step.stop();
    }
    assert.doesNotMatch(step.output(), /^internal error/m);
  });

  describe('steps/15-certificates.ts: certificates of security keys', () => {
    let step: Step;
    before(async () => {
      step = await startStep('15-certificates.ts', { env: { TRUSTED_USER_CA_KEYS: join(dir, 'trusted_user_ca_keys'),
        REVOKED_CERTIFICATES: join(dir, 'revoked_certificates') } });
    });
    after(async () => {
      await step.stop();
      assert.doesNotMatch(step.output(), /^internal error/m);
    });
    for (const client of ['9.2', '10.6'] as const) {
      test(`OpenSSH ${client}: sk-ssh-ed25519 and sk-ecdsa certificates log in; untouched, only with no-touch-required in the certificate; unverified, not with verify-required`, async () => {
        for (const name of ['c-ed25519', 'c-ecdsa', 'c-notouch']) {
          assert.deepEqual(await login(step, 'alice', name, client), { stdout: 'hi\n', stderr: '', status: 0 }, name);
        }
        for (const name of ['ed25519', 'ecdsa', 'notouch']) await logged(step, new RegExp(`certificate "c-${name}" \\(serial 0\\) of CA`));
        await logged(step, /authenticated as alice with a security key \(touched, not user-verified, counter 305419896\)$/m);
        await logged(step, /authenticated as alice with a security key \(not touched \(no user presence\), not user-verified, counter 305419896\)$/m);
        for (const [name, signed] of [['c-notouch-bare', 'not touched \\(no user presence\\), not user-verified'], ['c-unverified', 'touched, not user-verified']]) {
          const before = step.output().length;
          const refused = await login(step, 'alice', name!, client);
          assert.equal(refused.status, 255, name);
          await logged(step, new RegExp(`:\\d+ security key SHA256:\\S+ refused; its signature: ${signed}, counter 305419896$`, 'm'), before);
          assert.doesNotMatch(step.output().slice(before), / authenticated as /);
        }
        // verify-required, and the user verified by the token: in.
        const before = step.output().length;
        assert.deepEqual(await login(step, 'alice', 'c-verified', client), { stdout: 'hi\n', stderr: '', status: 0 });
        await logged(step, /authenticated as alice with a security key \(touched, user verified, counter 305419896\)$/m, before);
      });
    }
  });
});

describe('FIDO security keys: what no token would sign, through ssh2\'s client', { timeout: 120_000 }, () => {
  const dir = temporaryDir();
  const tokens = { ed25519: softwareSecurityKey('ed25519'), ecdsa: softwareSecurityKey('ecdsa') };
  let step: Step;
  before(async () => {
    writeFileSync(join(dir, 'alice'), `${tokens.ed25519.line}\n${tokens.ecdsa.line}\n`);
    step = await startStep('09-public-key-auth.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: dir } });
  });
  after(async () => {
    await step.stop();
    assert.doesNotMatch(step.output(), /^internal error/m);
  });

  /**
   * Logs in as alice with the token's key, signing with `answer(data)`, up to `tries` times on one connection; 'ok',
   * or why the client gave up. `signed` counts the signatures the client sent; `from` is the client's address.
   */
  function attempt(token: ReturnType<typeof softwareSecurityKey>, answer: (data: Buffer) => Buffer, tries = 1, signed = { count: 0 },
    from = '127.0.0.1') {
    return new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      client.on('ready', () => {
        client.end();
        resolve('ok');
      }).on('error', (err) => resolve(err.message)).on('close', () => resolve('closed by the step'));
      const agent = new SecurityKeyAgent(token, (data) => (signed.count++, answer(data)));
      let tried = 0;
      client.connect({
        host: '127.0.0.1', port: step.port, localAddress: from, username: 'alice', readyTimeout: 20_000,
        // The agent's one key, `tries` times; then nothing more to try.
        authHandler: (methods, partial, next) => (tried++ < tries ? next({ type: 'agent', username: 'alice', agent })
          : next(false as unknown as ssh2.AnyAuthMethod)),
      });
    });
  }

  for (const kind of ['ed25519', 'ecdsa'] as const) {
    const token = tokens[kind];
    test(`${kind}: a good signature logs in; untouched, for another application, or cut short: refused, and logged`, async () => {
      assert.equal(await attempt(token, (data) => token.sign(data, 0x01, 10)), 'ok');
      const before = step.output().length;
      for (const answer of [(data: Buffer) => token.sign(data, 0x00, 11), (data: Buffer) => token.sign(data, 0x01, 12, 'https://example.com'),
        (data: Buffer) => token.sign(data, 0x01, 13).subarray(0, 40), () => Buffer.alloc(0)]) {
        assert.match(await attempt(token, answer), /All configured authentication methods failed/);
      }
      // (The step's last lines may still be on their way.)
      await waitFor('the refusals', () => ((step.output().slice(before).match(/ refused for alice: the signature does not hold$/gm) ?? []).length >= 4) || undefined);
      const said = step.output().slice(before);
      assert.match(said, /refused; its signature: not touched \(no user presence\), not user-verified, counter 11$/m);
      assert.match(said, /refused; its signature: touched, not user-verified, counter 12$/m);
      assert.match(said, /refused; its signature: malformed$/m);
      assert.equal((said.match(/ refused for alice: the signature does not hold$/gm) ?? []).length, 4);
    });

    test(`${kind}: a counter that goes backwards is refused and logged; then the key logs in again at a higher one`, async () => {
      assert.equal(await attempt(token, (data) => token.sign(data, 0x01, 1000)), 'ok');
      const before = step.output().length;
      assert.match(await attempt(token, (data) => token.sign(data, 0x01, 999)), /All configured authentication methods failed/);
      await waitFor('the line', () => / its counter went backwards/.test(step.output().slice(before)) || undefined);
      await logged(step, /:\d+ security key SHA256:\S+: its counter went backwards \(999 after 1000\), as a copy of the key's would: refused$/m, before);
      assert.equal(await attempt(token, (data) => token.sign(data, 0x01, 1000)), 'ok'); // the same count again: a token that keeps none
      assert.equal(await attempt(token, (data) => token.sign(data, 0x01, 1001)), 'ok');
    });
  }

  test('a security key offered under a plain key\'s algorithm name (ssh-ed25519): refused, and logged', async () => {
    const token = tokens.ed25519;
    const before = step.output().length;
    // The agent hands over the security key as if it were an ssh-ed25519 key: ssh2's client then names it so.
    const disguised = new SecurityKeyAgent(token, (data) => token.sign(data, 0x01, 20000));
    disguised.getIdentities = (callback) => callback(undefined, [Object.create(ssh2.utils.parseKey(token.blob) as object,
      { type: { value: 'ssh-ed25519' } }) as ssh2.ParsedKey]);
    const outcome = await new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      let tried = 0;
      client.on('ready', () => (client.end(), resolve('ok'))).on('error', (err) => resolve(err.message));
      client.connect({ host: '127.0.0.1', port: step.port, username: 'alice', readyTimeout: 20_000,
        authHandler: (methods, partial, next) => (tried++ === 0 ? next({ type: 'agent', username: 'alice', agent: disguised })
          : next(false as unknown as ssh2.AnyAuthMethod)) });
    });
    assert.match(outcome, /All configured authentication methods failed/);
    await waitFor('the line', () => / a key offered as ssh-ed25519, but its blob is of type sk-ssh-ed25519@openssh\.com: refused$/m.test(step.output().slice(before)) || undefined);
  });

  test('a flood of bad security-key signatures: each connection closed after MAX_AUTH_TRIES, memory bounded, the next login fine', async () => {
    const token = tokens.ed25519;
    const before = residentMiB(step.pid);
    // 40 connections, 8 at a time (below MAX_STARTUPS), from 40 addresses (so that no address's penalty stops them
    // first), each sending up to 100 signatures of garbage (of 69 bytes to 30 kB) or untouched ones.
    const sent = Array.from({ length: 40 }, () => ({ count: 0 }));
    const outcomes: string[] = [];
    const peak = await peakDuring(step.pid, async () => {
      for (let wave = 0; wave < 40; wave += 8) {
        outcomes.push(...await Promise.all(sent.slice(wave, wave + 8).map((signed, j) => attempt(token, (data) => ((wave + j) % 2
          ? Buffer.alloc(69 + Math.floor(Math.random() * 30_000), 0x41) : token.sign(data, 0x00, 6000 + wave + j)), 100, signed,
        `127.0.3.${wave + j + 1}`))));
      }
    });
    assert.ok(peak - before < 60, `from ${before} to ${peak} MiB`);
    // The step closes each after its sixth failure (MAX_AUTH_TRIES): no connection got a seventh signature checked.
    assert.deepEqual(new Set(outcomes), new Set(['closed by the step']));
    assert.deepEqual(new Set(sent.map(({ count }) => count)), new Set([6]));
    assert.equal(await attempt(token, (data) => token.sign(data, 0x01, 5000)), 'ok');
  });
});
