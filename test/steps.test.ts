// Each step as a reader meets it: started as a process, driven by the real OpenSSH client.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { count, lines, quiet, ssh2Login, sshOptions, Terminal, todaysSsh, todaysSshRun, useStep, waitFor, type Step } from './helpers.ts';

const NO_TTY = 'Pseudo-terminal will not be allocated because stdin is not a terminal.';
const TRY_AGAIN = 'Permission denied, please try again.';
const GOODBYE = 'This session is very simple. Goodbye!';

describe('step 01: nobody can log in', { timeout: 60_000 }, () => {
  const step = useStep('01-no-login.ts');

  test('even the right password is refused, with no way to log in left', async () => {
    const result = await todaysSshRun(step().port, 'alice', 'wonderland');
    assert.deepEqual(lines(result.stderr), [NO_TTY, TRY_AGAIN, TRY_AGAIN, 'alice@localhost: Permission denied ().']);
    assert.equal(result.stdout, '');
    assert.equal(result.status, 255);
    await quiet(step());
    assert.doesNotMatch(step().output(), /authenticated/);
  });

  refusals(step, '', false); // step 01 checks no password, and so logs no reason
});

describe('step 02: a password, and nothing after it', { timeout: 60_000 }, () => {
  const step = useStep('02-password-auth.ts');

  test('the right password logs in, and the session channel is refused', async () => {
    const result = await todaysSshRun(step().port, 'alice', 'wonderland');
    assert.deepEqual(lines(result.stderr), [NO_TTY, 'channel 0: open failed: administratively prohibited: ']);
    assert.equal(result.stdout, '');
    assert.equal(result.status, 255);
    await waitFor('the log line', () => (/:\d+ authenticated as alice\n/.test(step().output()) || undefined));
  });

  test('in a real terminal, the reader sees the refusal and the connection close', async () => {
    assert.deepEqual(await inTerminal(step().port), {
      status: 255,
      screen: ['channel 0: open failed: administratively prohibited:', 'Connection to localhost closed.'],
    });
  });

  refusals(step, 'password');
});

describe('step 03: a trivial session channel', { timeout: 60_000 }, () => {
  const step = useStep('03-trivial-channel.ts');

  test('with input from a pipe, the shell request gets the goodbye line', async () => {
    const result = await todaysSshRun(step().port, 'alice', 'wonderland');
    assert.equal(result.stdout, `${GOODBYE}\r\n`);
    assert.deepEqual(lines(result.stderr), [NO_TTY]);
    // The server never says how the session ended (an exit status comes in a later step), so ssh reports 255.
    assert.equal(result.status, 255);
  });

  test('in a real terminal, the reader sees the three lines of the original post', async () => {
    assert.deepEqual(await inTerminal(step().port), {
      status: 255,
      screen: ['PTY allocation request failed on channel 0', GOODBYE, 'Connection to localhost closed.'],
    });
  });

  test('the ssh2 client gets the exact bytes, and the channel closes while the connection stays up', async () => {
    const client = await ssh2Login(step().port);
    let closedConnection = false;
    client.once('close', () => (closedConnection = true));
    try {
      for (const attempt of [1, 2]) {
        const received = await new Promise<string>((resolve, reject) =>
          client.shell(false, (err, channel) => {
            if (err) return reject(err);
            let bytes = '';
            channel.on('data', (chunk: Buffer) => (bytes += chunk.toString('latin1')));
            channel.once('close', () => resolve(bytes));
          }),
        );
        assert.equal(received, `${GOODBYE}\r\n`, `session ${attempt}`);
        // The server closed the channel, not the connection: the same connection opens a second session.
        assert.equal(closedConnection, false, `connection still open after session ${attempt}`);
      }
    } finally {
      client.end();
    }
  });

  refusals(step, 'password');
});

/**
 * Runs `ssh -p PORT alice@localhost` (OpenSSH 10.6, as the lessons' transcripts show it) in a 100x30 tmux terminal;
 * returns the screen and exit status at its end.
 */
async function inTerminal(port: number) {
  const terminal = new Terminal(...todaysSsh([...sshOptions, '-p', String(port), 'alice@localhost'], 'wonderland'));
  try {
    const status = await waitFor('ssh to end', () => terminal.exitStatus());
    return { status, screen: terminal.screen() };
  } finally {
    terminal.close();
  }
}

/** A wrong password and an unknown user are both refused with the list of ways left, and logged with the reason. */
function refusals(step: () => Step, methods: string, logsWhy = true) {
  for (const [user, password, why, reason] of [['alice', 'builder', 'a wrong password', 'wrong password'],
    ['carol', 'wonderland', 'an unknown user', 'no such user']]) {
    test(`${why} is refused, and the log says why, once for each try`, async () => {
      const loginsBefore = count(step(), /authenticated as/g);
      // Each line of the reason, and each "(previous message repeated N more times)" right after one.
      const logged = () => {
        let times = 0;
        let last = '';
        for (const line of lines(step().output())) {
          const repeated = / \(previous message repeated (\d+) more times\)$/.exec(line);
          if (repeated && last.endsWith(` password refused for ${user}: ${reason}`)) times += Number(repeated[1]);
          else if (line.endsWith(` password refused for ${user}: ${reason}`)) times += 1;
          if (!repeated) last = line;
        }
        return times;
      };
      const loggedBefore = logged();
      const result = await todaysSshRun(step().port, user!, password!);
      const expected = [NO_TTY, TRY_AGAIN, TRY_AGAIN, `${user}@localhost: Permission denied (${methods}).`];
      assert.deepEqual(lines(result.stderr), expected);
      assert.equal(result.stdout, '');
      assert.equal(result.status, 255);
      await quiet(step());
      assert.equal(count(step(), /authenticated as/g), loginsBefore, 'no login in the server log');
      assert.equal(logged() - loggedBefore, logsWhy ? 3 : 0);
    });
  }
}
