// Hashed passwords and `npm run passwd`, which writes them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { guarded, root, runStep, ssh, startStep, temporaryDir, Terminal, waitFor } from './helpers.ts';

/** Runs `npm run passwd -- ARGS` (as `tsx shared/login/passwd.ts`) with `input` piped in. */
function passwd(file: string, args: string[], input: string) {
  const child = guarded(spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'shared', 'login', 'passwd.ts'), ...args], {
    env: { ...process.env, SSH_PASSWORDS: file },
  }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(input);
  return new Promise<{ stdout: string; stderr: string; status: number | null }>((resolve) =>
    child.once('close', (status) => resolve({ stdout, stderr, status })));
}

const SCRYPT = /^\$scrypt\$ln=16,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;

describe('npm run passwd', { timeout: 60_000 }, () => {
  test('adds or replaces one line with a scrypt hash, and leaves every other byte as it was', async () => {
    const file = join(temporaryDir(), 'passwords');
    const before = '# who may log in\r\nalice:wonderland\r\n\n  # bob is a plain entry\nbob:builder';
    writeFileSync(file, before);
    chmodSync(file, 0o640);

    assert.deepEqual(await passwd(file, ['carol'], 'tortoise\n'),
      { stdout: `added the password of carol in ${file} (scrypt)\n`, stderr: '', status: 0 });
    assert.deepEqual(await passwd(file, ['alice'], 'looking-glass\r\n'),
      { stdout: `changed the password of alice in ${file} (scrypt)\n`, stderr: '', status: 0 });

    const after = readFileSync(file, 'utf8');
    const [comment, alice, blank, bobComment, bob, carol, end] = after.split(/(?<=\n)/);
    assert.equal(comment, '# who may log in\r\n');
    assert.match(alice!, /^alice:/);
    assert.ok(alice!.endsWith('\r\n'), 'alice keeps her CRLF line ending');
    assert.match(alice!.slice('alice:'.length, -2), SCRYPT);
    assert.equal(blank, '\n');
    assert.equal(bobComment, '  # bob is a plain entry\n');
    assert.equal(bob, 'bob:builder\n', 'a newline is added before the new line, nothing else');
    assert.match(carol!.slice('carol:'.length, -1), SCRYPT);
    assert.equal(end, undefined);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the mode is kept, less what others could read (0640 to 0600)');
    assert.deepEqual(readdirSync(join(file, '..')), ['passwords'], 'no temporary file is left');

    // Hashed and plain entries both log in; wrong passwords do not; no password reaches the log.
    const step = await startStep('03-trivial-channel.ts', { env: { SSH_PASSWORDS: file } });
    try {
      const goodbye = 'This session is very simple. Goodbye!\r\n';
      assert.equal((await ssh(step.port, 'alice', 'looking-glass', ['-T'])).stdout, goodbye);
      assert.equal((await ssh(step.port, 'carol', 'tortoise', ['-T'])).stdout, goodbye);
      assert.equal((await ssh(step.port, 'bob', 'builder', ['-T'])).stdout, goodbye);
      assert.equal((await ssh(step.port, 'alice', 'wonderland', ['-T'])).status, 255, 'the old password is gone');
      assert.equal((await ssh(step.port, 'carol', 'hare', ['-T'])).status, 255);
      assert.equal((await ssh(step.port, 'nobody', 'tortoise', ['-T'])).status, 255);
      for (const secret of ['looking-glass', 'tortoise', 'builder', 'wonderland', 'hare']) {
        assert.ok(!step.output().includes(secret), `the log holds no "${secret}"`);
      }
    } finally {
      await step.stop();
    }
  });

  test('through a symbolic link, the file it points to is changed and the link stays; the mode becomes 0600', async () => {
    const dir = temporaryDir();
    const target = join(dir, 'real-passwords');
    const link = join(dir, 'passwords');
    writeFileSync(target, 'alice:wonderland\n', { mode: 0o644 });
    chmodSync(target, 0o644);
    symlinkSync('real-passwords', link);
    assert.equal((await passwd(link, ['bob'], 'builder\n')).status, 0);
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');
    assert.match(readFileSync(target, 'utf8'), /^alice:wonderland\nbob:\$scrypt\$/);
    assert.equal(statSync(target).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir).sort(), ['passwords', 'real-passwords']);
  });

  test('on a terminal it asks twice without echo', async () => {
    const file = join(temporaryDir(), 'passwords');
    const terminal = new Terminal(['env', `SSH_PASSWORDS=${file}`, 'npm', 'run', '-s', 'passwd', '--', 'dave'], {});
    try {
      await waitFor('the prompt', () => terminal.screen().at(-1) === 'New password for dave:' || undefined);
      terminal.sendKeys('-l', 'mock turtle');
      terminal.sendKeys('Enter');
      await waitFor('the second prompt', () => terminal.screen().at(-1) === 'Retype the password:' || undefined);
      terminal.sendKeys('-l', 'mock turtle');
      terminal.sendKeys('Enter');
      assert.equal(await waitFor('passwd to end', () => terminal.exitStatus()), 0);
      assert.deepEqual(terminal.screen(), [
        'New password for dave:',
        'Retype the password:',
        `added the password of dave in ${file} (scrypt)`,
      ]);
    } finally {
      terminal.close();
    }
    assert.match(readFileSync(file, 'utf8'), /^dave:\$scrypt\$/);
  });

  test('refuses a bad user name or an empty password, and changes nothing', async () => {
    const file = join(temporaryDir(), 'passwords');
    writeFileSync(file, 'alice:wonderland\n');
    for (const [args, input, message] of [
      [['al ice'], 'x\n', 'usage: npm run passwd -- USERNAME'],
      [[], 'x\n', 'usage: npm run passwd -- USERNAME'],
      [['alice'], '\n', 'the password is empty'],
    ] as const) {
      const result = await passwd(file, [...args], input);
      assert.equal(result.status, 1);
      assert.match(result.stderr, new RegExp(`^error: ${message.replace(/[-.]/g, '\\$&')}`));
    }
    assert.equal(readFileSync(file, 'utf8'), 'alice:wonderland\n');
  });
});

test('a malformed $scrypt$ entry stops the step with one line naming the file and the line', async () => {
  const file = join(temporaryDir(), 'passwords');
  writeFileSync(file, 'alice:wonderland\nbob:$scrypt$ln=16,r=8$short$x\n');
  const result = await runStep('02-password-auth.ts', [], { SSH_PASSWORDS: file });
  assert.equal(result.stderr, `error: ${file} line 2: not a valid $scrypt$ hash\n`);
  assert.equal(result.status, 1);
});
