// What every step does before any client connects: host keys, the password file, options, listening, stopping.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { newHostKey } from '../shared/server/host-keys.ts';
import { lines, logged, runStep, ssh, startStep, temporaryDir } from './helpers.ts';

/** The `host key:` lines a step printed, without the prefix. */
function printedFingerprints(output: string): string[] {
  return lines(output).filter((line) => line.startsWith('host key: ')).map((line) => line.slice('host key: '.length));
}

function keygenFingerprint(file: string): string {
  const result = spawnSync('ssh-keygen', ['-lf', file], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

describe('host keys', { timeout: 120_000 }, () => {
  test('two steps started at once on a fresh folder agree on one set of keys, which later starts reuse', async () => {
    const dir = temporaryDir();
    const env = { HOST_KEYS_DIR: dir };
    const [a, b] = await Promise.all([startStep('01-no-login.ts', { env }), startStep('03-trivial-channel.ts', { env })]);
    await Promise.all([a.stop(), b.stop()]);

    const expected = [
      keygenFingerprint(join(dir, 'ssh_host_ed25519_key.pub')),
      keygenFingerprint(join(dir, 'ssh_host_rsa_key.pub')),
    ];
    assert.match(expected[0]!, /^256 SHA256:\S+ conch-steps \(ED25519\)$/);
    assert.match(expected[1]!, /^3072 SHA256:\S+ conch-steps \(RSA\)$/);
    assert.deepEqual(printedFingerprints(a.output()), expected, a.output());
    assert.deepEqual(printedFingerprints(b.output()), expected, b.output());
    // The private key files hold the same keys as the public ones, and only their owner may read them.
    for (const name of ['ssh_host_ed25519_key', 'ssh_host_rsa_key']) {
      assert.equal(keygenFingerprint(join(dir, name)), keygenFingerprint(join(dir, `${name}.pub`)));
      assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, `${name} mode`);
    }
    // Nothing half-written is left behind.
    assert.deepEqual(readdirSync(dir).sort(),
      ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub', 'ssh_host_rsa_key', 'ssh_host_rsa_key.pub'],
      `${a.output()}${b.output()}`);

    const before = readFileSync(join(dir, 'ssh_host_rsa_key'));
    const again = await startStep('02-password-auth.ts', { env });
    await again.stop();
    assert.deepEqual(printedFingerprints(again.output()), expected);
    assert.deepEqual(readFileSync(join(dir, 'ssh_host_rsa_key')), before);
  });

  test('every Ed25519 key made is one ssh2 reads back (ssh2 alone gets about one in 256 wrong)', () => {
    for (let i = 0; i < 1000; i++) {
      const key = ssh2.utils.parseKey(newHostKey('ed25519'));
      assert.ok(!(key instanceof Error), `key ${i}: ${key instanceof Error ? key.message : ''}`);
    }
  });

  test('the key a client is shown is the one the step printed', async () => {
    const step = await startStep('01-no-login.ts');
    try {
      const scan = spawnSync('ssh-keyscan', ['-p', String(step.port), '-t', 'ed25519,rsa', '127.0.0.1'], { encoding: 'utf8' });
      const seen = spawnSync('ssh-keygen', ['-lf', '-'], { input: scan.stdout, encoding: 'utf8' });
      const fingerprints = (text: string) => [...text.matchAll(/SHA256:\S+/g)].map((m) => m[0]).sort();
      assert.equal(fingerprints(seen.stdout).length, 2, scan.stderr);
      assert.deepEqual(fingerprints(seen.stdout), fingerprints(printedFingerprints(step.output()).join('\n')));
    } finally {
      await step.stop();
    }
  });

  test('a host key file that is not a key stops the step with one line', async () => {
    const dir = temporaryDir();
    writeFileSync(join(dir, 'ssh_host_ed25519_key'), 'not a key\n', { mode: 0o600 });
    const result = await runStep('01-no-login.ts', [], { HOST_KEYS_DIR: dir });
    assert.equal(result.status, 1);
    assert.equal(result.stderr, `error: host key ${join(dir, 'ssh_host_ed25519_key')} is not a usable private key `
      + '(Unsupported key format); move it away and a new one will be made\n');
  });

  test('a host key folder that is a file stops the step with one line', async () => {
    const dir = join(temporaryDir(), 'file');
    writeFileSync(dir, '');
    const result = await runStep('01-no-login.ts', [], { HOST_KEYS_DIR: dir });
    assert.equal(result.status, 1);
    assert.equal(result.stderr,
      `error: cannot read host key ${join(dir, 'ssh_host_ed25519_key')}: a part of the path is not a folder\n`);
  });
});

describe('the password file', { timeout: 60_000 }, () => {
  const cases: [string, string, string][] = [
    ['a line without a colon', '# demo\n\nalice:wonderland\nbob\n', 'line 4: expected username:password, found no ":"'],
    ['an empty user name', 'alice:wonderland\n:secret\n', 'line 2: the username before ":" is empty'],
    ['an empty password', '  # comment\nalice:\n', 'line 2: the password after ":" is empty'],
    ['a user listed twice', 'alice:one\r\nbob:two\r\nalice:three\r\n', 'line 3: user "alice" is listed twice'],
  ];
  for (const [what, content, message] of cases) {
    test(`${what} stops the step with one line naming the file and the line`, async () => {
      const file = join(temporaryDir(), 'passwords');
      writeFileSync(file, content);
      const result = await runStep('02-password-auth.ts', [], { SSH_PASSWORDS: file });
      assert.equal(result.stderr, `error: ${file} ${message}\n`);
      assert.equal(result.status, 1);
      assert.equal(result.stdout, '', 'stops before making keys or listening');
    });
  }

  test('a missing file stops the step with one line naming it', async () => {
    const file = join(temporaryDir(), 'missing');
    const result = await runStep('03-trivial-channel.ts', [], { SSH_PASSWORDS: file });
    assert.equal(result.stderr,
      `error: cannot read the password file ${file}: no such file (set SSH_PASSWORDS to use another file)\n`);
    assert.equal(result.status, 1);
  });

  test('SSH_PASSWORDS names the file; comments, blank lines, CRLF and colons in passwords work', async () => {
    const file = join(temporaryDir(), 'passwords');
    writeFileSync(file, '# who may log in\r\n\r\ndave:a:b:c\r\n   # indented comment\r\n');
    const step = await startStep('03-trivial-channel.ts', { env: { SSH_PASSWORDS: file } });
    try {
      assert.equal((await ssh(step.port, 'dave', 'a:b:c')).stdout, 'This session is very simple. Goodbye!\r\n');
      assert.equal((await ssh(step.port, 'dave', 'a:b')).stdout, '');
      assert.equal((await ssh(step.port, 'alice', 'wonderland')).stdout, '', 'the demo file is not read');
    } finally {
      await step.stop();
    }
  });
});

describe('options and listening', { timeout: 60_000 }, () => {
  test('--help prints the options and does nothing else', async () => {
    const dir = temporaryDir();
    const result = await runStep('03-trivial-channel.ts', ['--help'], { HOST_KEYS_DIR: dir });
    assert.equal(result.status, 0);
    assert.match(result.stdout, /^Usage: npx tsx steps\/03-trivial-channel\.ts \[--port N\] \[--host ADDRESS\]\n/);
    for (const word of ['--port', '--host', 'PORT', 'HOST', 'SSH_PASSWORDS', 'HOST_KEYS_DIR']) {
      assert.ok(result.stdout.includes(word), word);
    }
    assert.deepEqual(readdirSync(dir), [], 'no keys made');
  });

  test('a bad port or an unknown option is one line and status 1', async () => {
    assert.deepEqual(await runStep('01-no-login.ts', ['--port', 'http']), {
      stdout: '', stderr: 'error: the port must be a number from 0 to 65535, not "http"\n', status: 1,
    });
    const negative = await runStep('01-no-login.ts', ['--port', '-1']);
    assert.deepEqual([negative.stderr, negative.status], ['error: the port must be a number from 0 to 65535, not "-1"\n', 1]);
    const unknown = await runStep('01-no-login.ts', ['--prot', '22']);
    assert.equal(unknown.stderr, "error: Unknown option '--prot' (see --help)\n");
    assert.equal(unknown.status, 1);
  });

  test('a limit that is not a number is one line and status 1, before any key is made', async () => {
    const dir = temporaryDir();
    assert.deepEqual(await runStep('01-no-login.ts', [], { MAX_AUTH_TRIES: 'six', HOST_KEYS_DIR: dir }), {
      stdout: '', stderr: 'error: MAX_AUTH_TRIES must be a number of at least 1, not "six"\n', status: 1,
    });
    assert.equal((await runStep('01-no-login.ts', [], { MAX_STARTUPS: '0' })).stderr,
      'error: MAX_STARTUPS must be a number of at least 1, or START:RATE:FULL such as 10:30:100, not "0"\n');
    assert.deepEqual(readdirSync(dir), []);
  });

  test('PORT and HOST choose where to listen when no option does', async () => {
    const step = await startStep('01-no-login.ts', { args: [], env: { HOST: '127.0.0.2' } });
    await step.stop();
    await logged(step, /^listening on 127\.0\.0\.2:\d+$/m);
  });

  test('a port in use is one line and status 1', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await runStep('03-trivial-channel.ts', ['--port', String(port)]);
      assert.equal(result.stderr,
        `error: cannot listen on 127.0.0.1:${port}: the port is in use (choose another with --port)\n`);
      assert.equal(result.status, 1);
      // Step 17, with four workers, five times: once, and nothing else (all four said it, or hit EPIPE, before).
      for (let i = 0; i < 5; i++) {
        const cluster = await runStep('17-every-core.ts', ['--port', String(port)], { WORKERS: '4' });
        assert.equal(cluster.stderr,
          `error: cannot listen on 127.0.0.1:${port}: the port is in use (choose another with --port)\n`);
        assert.doesNotMatch(cluster.stdout, /internal error|EPIPE/);
        assert.equal(cluster.status, 1);
      }
    } finally {
      blocker.close();
    }
  });

  test('every connection gets TCP_NODELAY as soon as it opens', async () => {
    const step = await startStep('03-trivial-channel.ts', { preload: ['./test/spy-nodelay.ts'] });
    try {
      await ssh(step.port, 'alice', 'wonderland');
      await ssh(step.port, 'carol', 'nobody');
    } finally {
      await step.stop();
    }
    const peers = [...step.output().matchAll(/^(\S+) connection opened$/gm)].map((m) => m[1]);
    assert.equal(peers.length, 2);
    for (const peer of peers) await logged(step, new RegExp(`^setNoDelay\\(true\\) for ${peer!.replaceAll('.', '\\.')}$`, 'm'));
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} closes the listener and exits 0, also through the tsx command`, async () => {
      const step = await startStep('03-trivial-channel.ts', { viaTsxCommand: true });
      assert.equal(await step.stop(signal), 0);
      await logged(step, new RegExp(`^${signal}: closing the listener`, 'm'));
      const refused = await new Promise<boolean>((resolve) => {
        const probe = createServer();
        // The port is free again: the listener is closed.
        probe.once('error', () => resolve(false)).listen(step.port, '127.0.0.1', () => probe.close(() => resolve(true)));
      });
      assert.ok(refused, 'port is free after stopping');
    });
  }
});
