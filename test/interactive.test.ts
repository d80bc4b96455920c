// Steps 04-07, where the session talks with the client: terminals, typed keys, piped input, EOF, protocols.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import type ssh2 from 'ssh2';
import type { ClientChannel, PseudoTtyOptions } from 'ssh2';
import { count, debianTestingCommand, quiet, ssh, ssh2Login, sshEnv, sshOptions, Terminal, todaysSsh, useStep, waitFor } from './helpers.ts';
import { socketOf } from './hostile.ts';

const NO_TERMINAL = 'No terminal was requested, so there is no name or size to show.\r\n';
const CLOSED = 'Connection to localhost closed.';
const CLOSED_WITHOUT_EOF = / channel closed without EOF$/gm;

describe('step 04: pty requests', { timeout: 60_000 }, () => {
  const step = useStep('04-pty-requests.ts');

  test('in a 100x30 terminal, the step reports its name and size, columns first', async () => {
    const terminal = sshInTerminal(step().port, { TERM: 'xterm-256color' });
    try {
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 255);
      assert.deepEqual(terminal.screen(), [
        'Your terminal name is "xterm-256color". Your terminal is 100 columns wide and 30 rows tall.',
        CLOSED,
      ]);
    } finally {
      terminal.close();
    }
  });

  test('with ssh -T, the step says that no terminal was requested', async () => {
    const result = await ssh(step().port, 'alice', 'wonderland', ['-T']);
    assert.deepEqual(result, { stdout: NO_TERMINAL, stderr: '', status: 255 });
  });

  test('the ssh2 client gets the exact bytes for the terminal it describes', async () => {
    const received = await withShell(step().port, { term: 'vt220', cols: 132, rows: 43, width: 1056, height: 688 },
      (channel) => collect(channel));
    assert.equal(received,
      'Your terminal name is "vt220". Your terminal is 132 columns wide and 43 rows tall.\r\n');
  });
});

describe('step 05: accepting input', { timeout: 60_000 }, () => {
  const step = useStep('05-accepting-input.ts');

  test('piped input without a terminal: the no-terminal line, the echo, and then ssh waits', async () => {
    const [command, env] = debianTestingCommand(['ssh', ...sshOptions, '-T', '-p', String(step().port), 'alice@localhost'], 'wonderland');
    const client = spawn(command[0]!, command.slice(1), { env: { ...process.env, ...env } });
    for (const pipe of [client.stdin, client.stdout, client.stderr]) pipe.on('error', () => {}); // what it did, its output says
    const ended = new Promise((resolve) => client.once('exit', resolve));
    let stdout = '';
    client.stdout.on('data', (chunk) => (stdout += chunk));
    client.stdin.end('hello\n');
    try {
      await waitFor('the echo', () => stdout.includes('echo: ') || undefined);
      // Nothing more comes, and ssh does not end: what does not happen, nothing announces; half a second to show it.
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(stdout, `${NO_TERMINAL}echo: 'hello\\n'\r\n`);
      assert.equal(client.exitCode, null, 'ssh is still waiting');
    } finally {
      client.kill('SIGINT');
      await ended;
    }
  });

  test('in a terminal, each key is echoed as Python would show it, and ~. leaves', async () => {
    const terminal = sshInTerminal(step().port);
    try {
      await screenShows(terminal, /^Your terminal name is /);
      for (const [key, shown] of [['a', `echo: 'a'`], ['C-c', `echo: '\\x03'`], ['C-d', `echo: '\\x04'`],
        ['Enter', `echo: '\\r'`]]) {
        terminal.sendKeys(key!);
        await screenShows(terminal, new RegExp(`^${escape(shown!)}$`));
      }
      terminal.sendKeys('~', '.');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 255);
      assert.equal(terminal.screen().at(-1), CLOSED);
    } finally {
      terminal.close();
    }
  });

  test('the ssh2 client gets one exact answer a chunk, and the channel stays open after EOF', async () => {
    await withShell(step().port, false, async (channel, client) => {
      const nextChunk = () => new Promise<string>((resolve) =>
        channel.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
      const answer = (data: string) => {
        const reply = nextChunk();
        channel.write(data);
        return reply;
      };
      assert.equal(await nextChunk(), NO_TERMINAL, 'the first line');
      assert.equal(await answer('hello\n'), `echo: 'hello\\n'\r\n`);
      assert.equal(await answer(`it's`), `echo: "it's"\r\n`);
      // This step does not notice EOF: the channel is still open once the step has answered what came after it
      // (a command it does not run: a refusal, all the same), as it would have closed it by then (step 06 is about that).
      let closed = false;
      channel.on('end', () => (closed = true)).on('close', () => (closed = true));
      channel.end();
      await new Promise((resolve) => client.exec('true', resolve));
      assert.equal(closed, false, 'the channel is still open');
    });
  });
});

describe('step 06: detecting EOF', { timeout: 60_000 }, () => {
  const step = useStep('06-detecting-eof.ts');

  test('input piped into ssh is echoed, then EOF is answered and ssh exits by itself', async () => {
    const before = count(step(), CLOSED_WITHOUT_EOF);
    const answered = `${NO_TERMINAL}echo: 'hello\\n'\r\neof received\r\n`;
    const result = await ssh(step().port, 'alice', 'wonderland', ['-T'], 'hello\n');
    assert.deepEqual(result, { stdout: answered, stderr: '', status: 255 });
    // ssh often sends the input and EOF in one TCP segment: the step must still answer the input before the EOF.
    // Here always so: both in one write of the socket, so that the step reads them at once.
    const client = await ssh2Login(step().port);
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        client.shell(false, (err, c) => (err ? reject(err) : resolve(c))));
      const received = collect(channel);
      const socket = socketOf(client);
      socket.cork();
      channel.end('hello\n'); // its data, then its EOF (as the stream finishes)
      setImmediate(() => socket.uncork());
      assert.equal(await received, answered);
    } finally {
      client.end();
    }
    await quiet(step());
    assert.equal(count(step(), CLOSED_WITHOUT_EOF), before, 'no "closed without EOF" for a channel that got EOF');
  });

  test('in a terminal, Ctrl-D is only a byte; leaving with ~. is logged as a close without EOF', async () => {
    const before = count(step(), CLOSED_WITHOUT_EOF);
    const terminal = sshInTerminal(step().port);
    try {
      await screenShows(terminal, /^Your terminal name is /);
      terminal.sendKeys('C-d');
      await screenShows(terminal, /^echo: '\\x04'$/);
      terminal.sendKeys('Enter', '~', '.');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 255);
      assert.ok(!terminal.screen().includes('eof received'));
    } finally {
      terminal.close();
    }
    await waitFor('the log line', () => count(step(), CLOSED_WITHOUT_EOF) === before + 1 || undefined);
  });

  test('a client killed mid-session is logged as a close without EOF', async () => {
    const before = count(step(), CLOSED_WITHOUT_EOF);
    const client = spawn('ssh', [...sshOptions, '-T', '-p', String(step().port), 'alice@localhost'], {
      env: { ...process.env, ...sshEnv('wonderland') },
    });
    for (const pipe of [client.stdin, client.stdout, client.stderr]) pipe.on('error', () => {}); // it is killed: EPIPE is expected
    let stdout = '';
    client.stdout.on('data', (chunk) => (stdout += chunk));
    client.stdin.write('still typing');
    await waitFor('the echo', () => stdout.includes(`echo: 'still typing'`) || undefined);
    client.kill('SIGKILL');
    await waitFor('the log line', () => count(step(), CLOSED_WITHOUT_EOF) === before + 1 || undefined);
    // The channel's line comes before its connection's last line, not after it.
    await quiet(step());
    const logged = step().output().split('\n');
    const who = logged.filter((line) => line.endsWith(' channel closed without EOF')).at(-1)!.split(' ')[0];
    const last = logged.filter((line) => line.startsWith(`${who} `)).slice(-2);
    assert.deepEqual(last, [`${who} channel closed without EOF`, `${who} connection closed`]);
  });
});

describe('step 07: protocols', { timeout: 60_000 }, () => {
  const step = useStep('07-protocols.ts');

  test('in a terminal, the protocol greets and echoes what is typed', async () => {
    const terminal = sshInTerminal(step().port);
    try {
      await screenShows(terminal, /^Echo protocol connected$/);
      terminal.sendKeys('-l', 'hello, echo');
      await waitFor('the echo', () => terminal.screen()[1] === 'hello, echo' || undefined);
      assert.equal(terminal.screen()[0], 'Echo protocol connected');
      terminal.sendKeys('Enter', '~', '.');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 255);
    } finally {
      terminal.close();
    }
  });

  test('piped input is echoed byte for byte, and the protocol finishes at EOF', async () => {
    const result = await ssh(step().port, 'alice', 'wonderland', ['-T'], 'hello\n');
    assert.deepEqual(result, { stdout: 'Echo protocol connected\r\nhello\n', stderr: '', status: 255 });
  });

  test('the ssh2 client gets every byte value back unchanged', async () => {
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const received = await withShell(step().port, false, (channel) => {
      channel.end(everyByte);
      return collect(channel);
    });
    assert.equal(received, `Echo protocol connected\r\n${everyByte.toString('latin1')}`);
  });
});

/**
 * `ssh -p PORT alice@localhost` in a 100x30 tmux terminal, with the password given through SSH_ASKPASS: OpenSSH
 * 10.6, as the lessons' transcripts show it.
 */
function sshInTerminal(port: number, env: Record<string, string> = {}): Terminal {
  const setEnv = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  const [command, askpass] = todaysSsh([...sshOptions, '-p', String(port), 'alice@localhost'], 'wonderland');
  return new Terminal(['env', ...setEnv, ...command], askpass);
}

function screenShows(terminal: Terminal, row: RegExp): Promise<true> {
  return waitFor(`a row matching ${row}`, () => terminal.screen().some((line) => row.test(line)) || undefined);
}

/** Logs in with the ssh2 client as bob, opens a shell (with or without a pty) and hands the channel (and the client) to `use`. */
async function withShell<T>(port: number, pty: PseudoTtyOptions | false, use: (c: ClientChannel, client: ssh2.Client) => Promise<T>) {
  const client = await ssh2Login(port);
  try {
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      client.shell(pty, (err, channel) => (err ? reject(err) : resolve(channel))));
    return await use(channel, client);
  } finally {
    client.end();
  }
}

/** Everything a channel sends until it closes, as Latin-1 text (one character a byte). */
function collect(channel: ClientChannel): Promise<string> {
  let text = '';
  channel.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  return new Promise((resolve) => channel.once('close', () => resolve(text)));
}

function escape(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}
