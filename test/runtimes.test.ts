// The runtimes readers have today (.ci/today installs them from npm): every step starts on each, a real login
// to steps 03, 09 and 10 works, and step 18's Ink app draws. Node 24 and later run TypeScript without tsx, and have ML-KEM in node:crypto; the
// others take ML-KEM from @noble/post-quantum. Either way OpenSSH 10.6 gets the post-quantum key exchange.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inDebianTesting, root, ssh, sshEnv, sshOptions, startStep, temporaryDir, Terminal, todayRuntime, waitFor, type StartOptions } from './helpers.ts';

const runtimes: [string, () => string[]][] = [
  ['Node 22, tsx', () => [todayRuntime('node22/bin/node'), '--import', 'tsx']],
  ['Node 24, tsx', () => [todayRuntime('node24/bin/node'), '--import', 'tsx']],
  ['Node 24, node alone', () => [todayRuntime('node24/bin/node')]],
  ['Node 26, tsx', () => [todayRuntime('node26/bin/node'), '--import', 'tsx']],
  ['Node 26, node alone', () => [todayRuntime('node26/bin/node')]],
  ['Deno 2', () => [todayRuntime('.bin/deno'), 'run', '-A']],
  ['Bun 1', () => [todayRuntime('.bin/bun')]],
];

const steps = readdirSync(join(root, 'steps')).filter((file) => file.endsWith('.ts'));
const GOODBYE = 'This session is very simple. Goodbye!\r\n';

// A key for step 09, in a folder of authorized_keys of its own.
const keys = temporaryDir();
spawnSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', join(keys, 'id')]);
const authorized = temporaryDir();
writeFileSync(join(authorized, 'alice'), spawnSync('cat', [join(keys, 'id.pub')], { encoding: 'utf8' }).stdout);

for (const [name, command] of runtimes) {
  describe(name, { timeout: 180_000 }, () => {
    const options = (): StartOptions => ({ runtime: command(), env: { SSH_AUTHORIZED_KEYS_DIR: authorized } });

    test('every step starts, listens, and stops with status 0 at SIGTERM', async () => {
      for (const file of steps) {
        const step = await startStep(file, options());
        assert.equal(await step.stop(), 0, file);
      }
    });

    test('OpenSSH 10.6 logs in to step 03 with the post-quantum key exchange', async () => {
      const step = await startStep('03-trivial-channel.ts', options());
      try {
        const result = await inDebianTesting(['ssh', '-v', '-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null',
          '-o', 'StrictHostKeyChecking=no', '-p', String(step.port), 'alice@127.0.0.1'], 'wonderland');
        assert.equal(result.stdout, GOODBYE, result.stderr);
        assert.match(result.stderr, /^debug1: kex: algorithm: mlkem768x25519-sha256$/m);
      } finally {
        await step.stop();
      }
    });

    test('a key login to step 09 and a password login to step 10', async () => {
      const nine = await startStep('09-public-key-auth.ts', options());
      try {
        const result = await ssh(nine.port, 'alice', 'wrong', ['-i', join(keys, 'id'), '-o', 'PasswordAuthentication=no', 'whoami']);
        assert.deepEqual([result.stdout, result.status], ['alice\n', 0], result.stderr);
      } finally {
        await nine.stop();
      }
      const ten = await startStep('10-window-change.ts', options());
      try {
        const result = await ssh(ten.port, 'alice', 'wonderland', ['-T'], '');
        assert.deepEqual([result.stderr, result.status],
          ['This app draws on a terminal, and none was requested: connect with ssh -t.\n', 1]);
        assert.deepEqual((await ssh(ten.port, 'bob', 'builder', ['whoami'])).stdout, 'bob\n');
      } finally {
        await ten.stop();
      }
    });

    test('step 18 draws its Ink app in a real terminal, and q ends it with status 0', async () => {
      const step = await startStep('18-ink-app.ts', options());
      const terminal = new Terminal(['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', '-p', String(step.port), 'alice@localhost'],
        sshEnv('wonderland'), 60, 14);
      try {
        await waitFor('the app', () => terminal.screen().some((row) => row.includes('> The White Rabbit')) || undefined);
        assert.equal(terminal.screen().at(-1)!.trimEnd(), ' alice | 60x14');
        terminal.sendKeys('q');
        assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 0);
      } finally {
        terminal.close();
        await step.stop();
      }
    });
  });
}
