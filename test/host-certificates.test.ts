// Host certificates: `npm run host-cert` signs a step's host keys with a host CA, and the step serves them, so that
// OpenSSH, trusting the CA alone (one `@cert-authority` line, strict checking), logs in without a host key prompt.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { guarded, lines, root, sshEnv, startStep, temporaryDir } from './helpers.ts';

const dir = temporaryDir();
const keys = join(dir, 'keys');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'host CA', '-f', join(dir, 'ca')]);
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'another CA', '-f', join(dir, 'other-ca')]);

/** `npm run host-cert -- ARGS` for the keys in `folder`, as a reader runs it: what it printed, and its exit status. */
function hostCertIn(folder: string, args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'shared', 'server', 'host-cert.ts'), ...args],
    { cwd: root, env: { ...process.env, HOST_KEYS_DIR: folder }, encoding: 'utf8' });
  return { stdout: run.stdout, stderr: run.stderr, status: run.status };
}
const hostCert = (args: string[]) => hostCertIn(keys, args);

/** OpenSSH with nothing in known_hosts but `line`, strict checking on, and the password through SSH_ASKPASS. */
function ssh(port: number, line: string, args: string[] = []) {
  const knownHosts = join(dir, `known_hosts-${port}`);
  writeFileSync(knownHosts, `${line}\n`);
  const child = guarded(spawn('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
    '-o', 'LogLevel=ERROR', ...args, '-p', String(port), 'alice@localhost'], { env: { ...process.env, ...sshEnv('wonderland') } }));
  let [stdout, stderr] = ['', ''];
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  return new Promise<{ stdout: string; stderr: string; status: number | null }>((resolve) =>
    child.on('close', (status) => resolve({ stdout, stderr, status })));
}

describe('host certificates: npm run host-cert, then any step serves them', { timeout: 120_000 }, () => {
  test('before the keys exist, npm run host-cert says to start a step; a bad call says how to call it', () => {
    assert.deepEqual(hostCert([join(dir, 'ca')]), { stdout: '', status: 1,
      stderr: `error: no host key ${keys}/ssh_host_ed25519_key.pub yet: start any step once, and it is made\n` });
    assert.equal(hostCert([]).status, 1);
    assert.match(hostCert([join(dir, 'nothing')]).stderr, /^error: no .*nothing\.pub beside the CA key/);
  });

  test('signed, step 03 serves both certificates, and OpenSSH trusting only the CA logs in with no prompt', async () => {
    await (await startStep('03-trivial-channel.ts', { env: { HOST_KEYS_DIR: keys } })).stop(); // makes the keys
    const signed = hostCert([join(dir, 'ca')]);
    assert.equal(signed.status, 0, signed.stderr);
    const caLine = execFileSync('cut', ['-d', ' ', '-f', '1,2', join(dir, 'ca.pub')], { encoding: 'utf8' }).trim();
    // A year, unless told otherwise: ssh-keygen's -V +52w, from the second it signed each key (the two may differ).
    const [edUntil, rsaUntil] = lines(signed.stdout).slice(0, 2).map((line) => /valid until (\S+)\)$/.exec(line)?.[1] ?? '');
    for (const until of [edUntil, rsaUntil]) {
      const year = Date.parse(until!) - Date.now();
      assert.ok(year > 363 * 86_400_000 && year <= 364 * 86_400_000, `valid until ${until}`);
    }
    assert.deepEqual(lines(signed.stdout), [
      `signed ${keys}/ssh_host_ed25519_key.pub: ${keys}/ssh_host_ed25519_key-cert.pub (names: localhost; valid until ${edUntil})`,
      `signed ${keys}/ssh_host_rsa_key.pub: ${keys}/ssh_host_rsa_key-cert.pub (names: localhost; valid until ${rsaUntil})`,
      'Clients trust every machine so signed with this line in their known_hosts:',
      `@cert-authority localhost,[localhost]:* ${caLine}`,
    ]);
    const step = await startStep('03-trivial-channel.ts', { env: { HOST_KEYS_DIR: keys } });
    try {
      assert.deepEqual(lines(step.output()).filter((line) => line.startsWith('host certificate')), [
        `host certificate: ssh-ed25519-cert-v01@openssh.com (${keys}/ssh_host_ed25519_key-cert.pub), for localhost, valid until ${edUntil}`,
        `host certificate: ssh-rsa-cert-v01@openssh.com (${keys}/ssh_host_rsa_key-cert.pub), for localhost, valid until ${rsaUntil}`,
      ]);
      const trusted = lines(signed.stdout).at(-1)!;
      // Step 03 never sends an exit status, so ssh ends with 255; it logged in, and asked nothing.
      for (const algorithms of [[], ['-o', 'HostKeyAlgorithms=rsa-sha2-512-cert-v01@openssh.com']]) {
        assert.deepEqual(await ssh(step.port, trusted, algorithms),
          { stdout: 'This session is very simple. Goodbye!\r\n', stderr: '', status: 255 });
      }
      // Another CA, or the right CA for another name: no login, and no question asked.
      const other = trusted.replace(caLine, execFileSync('cut', ['-d', ' ', '-f', '1,2', join(dir, 'other-ca.pub')], { encoding: 'utf8' }).trim());
      for (const line of [other, trusted.replace('localhost,[localhost]:*', 'example.com,[example.com]:*')]) {
        const refused = await ssh(step.port, line);
        assert.equal(refused.status, 255);
        assert.match(refused.stderr, /Host key verification failed\.\r?\n$/);
      }
    } finally {
      await step.stop();
    }
  });

  test('a certificate that has expired, is not valid yet, or names no host is not served, and the step says why', async () => {
    const expired = join(dir, 'expired');
    execFileSync('mkdir', ['-p', expired]);
    await (await startStep('03-trivial-channel.ts', { env: { HOST_KEYS_DIR: expired } })).stop(); // makes the keys
    const sign = (key: string, args: string[]) => execFileSync('ssh-keygen', ['-q', '-s', join(dir, 'ca'), '-h', '-I', 'test',
      ...args, join(expired, `${key}.pub`)], { stdio: 'ignore' });
    const weeks = (n: number) => n * 7 * 86_400_000;
    const signing = Date.now() - 1000; // ssh-keygen counts whole seconds
    sign('ssh_host_ed25519_key', ['-n', 'localhost', '-V', '20200101:20200102']);
    sign('ssh_host_rsa_key', ['-n', 'localhost', '-V', '+100w:+101w']);
    const signed = Date.now();
    const step = await startStep('03-trivial-channel.ts', { env: { HOST_KEYS_DIR: expired } });
    try {
      const said = lines(step.output()).filter((line) => line.startsWith('host certificate'));
      assert.equal(said.length, 2);
      assert.equal(said[0], `host certificate ${expired}/ssh_host_ed25519_key-cert.pub not served: it expired at `
        + `${new Date(2020, 0, 2).toISOString().replace('.000Z', 'Z')}; sign the key again (npm run host-cert -- CA_KEY)`);
      const [, from] = new RegExp(`^host certificate ${expired}/ssh_host_rsa_key-cert.pub not served: it is not valid before (\\S+); `
        + 'sign the key again \\(npm run host-cert -- CA_KEY\\)$').exec(said[1]!) ?? [];
      assert.ok(Date.parse(from!) >= signing + weeks(100) && Date.parse(from!) <= signed + weeks(100), said[1]);
      // The key alone is served: a client that knows it logs in.
      const keyLine = `localhost ${execFileSync('cut', ['-d', ' ', '-f', '1,2', join(expired, 'ssh_host_ed25519_key.pub')], { encoding: 'utf8' }).trim()}`;
      assert.equal((await ssh(step.port, keyLine)).stdout, 'This session is very simple. Goodbye!\r\n');
    } finally {
      await step.stop();
    }
    sign('ssh_host_ed25519_key', []);
    const nameless = await startStep('03-trivial-channel.ts', { env: { HOST_KEYS_DIR: expired } });
    await nameless.stop();
    assert.ok(lines(nameless.output()).includes(`host certificate ${expired}/ssh_host_ed25519_key-cert.pub not served: it names no host; `
      + 'sign the key again (npm run host-cert -- CA_KEY)'));
    // --valid: as long as asked.
    const hour = hostCertIn(expired, [join(dir, 'ca'), '--valid', '+1h', 'localhost']);
    const until = Date.parse(/valid until (\S+)\)$/.exec(lines(hour.stdout)[0]!)![1]!) - Date.now();
    assert.ok(until > 58 * 60_000 && until <= 60 * 60_000, `${until} ms`);
    assert.equal(hostCertIn(expired, [join(dir, 'ca'), '--valid', 'a year']).status, 1);
  });

  test('a certificate that is no longer its key\'s stops the step with one line that says what to do', async () => {
    const wrong = join(dir, 'wrong');
    execFileSync('mkdir', ['-p', wrong]);
    execFileSync('cp', [join(keys, 'ssh_host_rsa_key-cert.pub'), join(wrong, 'ssh_host_ed25519_key-cert.pub')]);
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'steps', '03-trivial-channel.ts'), '--port', '0'],
      { cwd: root, env: { ...process.env, HOST_KEYS_DIR: wrong }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 1);
    assert.equal(lines(run.stderr).at(-1), `error: host certificate ${wrong}/ssh_host_ed25519_key-cert.pub cannot be served: `
      + 'Host certificate of type ssh-rsa-cert-v01@openssh.com is not one of a ssh-ed25519 key; sign the key again '
      + '(npm run host-cert -- CA_KEY), or move the certificate away');
  });
});
