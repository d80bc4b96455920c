// Steps 08-10, beyond the series: commands with an exit status, public keys, a full-screen app.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';
import { ssh, useStep } from './helpers.ts';

/** Logs in with the ssh2 client and runs `command`, sending `input` and EOF; resolves with the output and exit. */
async function execWithSsh2(port: number, command: string, input: Buffer) {
  const client = new ssh2.Client();
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve).once('error', reject);
      client.connect({ host: '127.0.0.1', port, username: 'bob', password: 'builder' });
    });
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
    const result = await ssh(step().port, 'alice', 'wonderland', ['-T'], 'hi\n');
    assert.deepEqual(result, { stdout: 'Echo protocol connected\r\nhi\n', stderr: '', status: 255 });
  });
});
