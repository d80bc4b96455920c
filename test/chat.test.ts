// Step 13, the chat room: three OpenSSH clients in real terminals, then the room attacked through ssh2's client.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type ssh2 from 'ssh2';
import { escapeFlood, peakDuring, raw, residentMiB, sendWithoutReading } from './hostile.ts';
import { count, lines, ssh, ssh2Login, sshEnv, sshOptions, temporaryDir, Terminal, useStep, waitFor } from './helpers.ts';

const passwords = join(temporaryDir(), 'ssh-passwords');
writeFileSync(passwords, ['alice:wonderland', 'bob:builder', 'carol:lewis', ...Array.from({ length: 60 }, (_, i) => `user${i}:pw${i}`), ''].join('\n'));

/** `ssh -p PORT USER@localhost` in a tmux terminal of its own, 100x30, typing the password through SSH_ASKPASS. */
function chatter(port: number, user: string, password: string): Terminal {
  return new Terminal(['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', '-p', String(port), `${user}@localhost`], sshEnv(password));
}

/** Waits until the terminal's screen has a row equal to `row` (or matching it). */
function seen(terminal: Terminal, row: string | RegExp): Promise<string[]> {
  return waitFor(`${row} on the screen`, () => {
    const screen = terminal.screen();
    return screen.some((each) => (typeof row === 'string' ? each === row : row.test(each))) ? screen : undefined;
  });
}

describe('step 13: three people in the room, in real terminals', { timeout: 120_000 }, () => {
  const step = useStep('13-chat-room.ts', { env: { SSH_PASSWORDS: passwords } });

  test('messages, notices, /who, a half-typed line that survives, a defused escape sequence, and leaving', async () => {
    const alice = chatter(step().port, 'alice', 'wonderland');
    const terminals = [alice];
    try {
      await seen(alice, /^Welcome, alice\. 1 here;/);
      const b = chatter(step().port, 'bob', 'builder');
      terminals.push(b);
      await seen(alice, '* bob joined');
      const c = chatter(step().port, 'carol', 'lewis');
      terminals.push(c);
      await seen(b, '* carol joined');
      const title = alice.display('#{pane_title}');

      // Alice has typed half a line when bob speaks: bob's line goes above it, and hers is drawn again below.
      alice.sendKeys('-l', 'half a li');
      await seen(alice, 'alice> half a li');
      b.sendKeys('-l', 'hello, room');
      b.sendKeys('Enter');
      for (const t of terminals) await seen(t, 'bob: hello, room');
      // Bob's line comes first, then hers again: a capture may come between the two.
      const rows = ['bob: hello, room', 'alice> half a li'];
      await waitFor('her line below bob\'s', () => alice.screen().slice(-2).join('\n') === rows.join('\n') || undefined)
        .catch(() => assert.deepEqual(alice.screen().slice(-2), rows));
      alice.sendKeys('-l', 'ne');
      alice.sendKeys('Enter');
      for (const t of terminals) await seen(t, 'alice: half a line');

      // An escape sequence typed (or pasted) by carol: clear the screen, retitle the window. Nothing of it acts.
      c.sendKeys('-l', 'see \x1b[2J\x1b]0;owned\x07this');
      c.sendKeys('Enter');
      await seen(alice, /^carol: see /);
      assert.ok(alice.screen().includes('bob: hello, room'), 'the screen was not cleared');
      assert.equal(alice.display('#{pane_title}'), title, 'the window was not retitled');
      assert.doesNotMatch(alice.screen().join('\n'), /\x1b/);

      b.sendKeys('-l', '/who');
      b.sendKeys('Enter');
      await seen(b, '* here: alice, bob, carol');

      c.sendKeys('C-c');
      await seen(alice, '* carol left');
      assert.equal(await waitFor('carol\'s ssh to end', () => c.exitStatus()), 0);
      b.sendKeys('-l', '/quit');
      b.sendKeys('Enter');
      await seen(alice, '* bob left');
      assert.equal(await waitFor('bob\'s ssh to end', () => b.exitStatus()), 0);
    } finally {
      for (const t of terminals) t.close();
    }
  });

  test('the eleventh message in 10 seconds is not sent, and its sender is told to slow down', async () => {
    // (A user of this test's own: the count is the user's, in every session, for 10 seconds.)
    const user4 = await member(step().port, 'user4', 'pw4');
    try {
      for (let i = 1; i <= 11; i++) user4.channel.write(`number ${i}\r`);
      await waitFor('the answer', () => user4.said.includes('* slow down: at most 10 messages in 10 seconds (CHAT_RATE)') || undefined);
      assert.ok(user4.said.includes('user4: number 10'));
      assert.ok(!user4.said.includes('user4: number 11'));
    } finally {
      user4.client.end();
    }
  });

  test('CHAT_RATE counts a user\'s lines in all their sessions together', async () => {
    const sessions = [await member(step().port, 'user5', 'pw5'), await member(step().port, 'user5', 'pw5')];
    try {
      // Each line said in turn from one session and the other, the next once the room has shown it.
      for (let i = 1; i <= 10; i++) {
        sessions[i % 2]!.channel.write(`number ${i}\r`);
        await waitFor(`line ${i}`, () => sessions[0]!.said.includes(`user5: number ${i}\r`) || undefined);
      }
      sessions[1]!.channel.write('number 11\r');
      await waitFor('the answer', () => sessions[1]!.said.includes('* slow down: at most 10 messages in 10 seconds (CHAT_RATE)') || undefined);
      sessions[1]!.channel.write('/who\r'); // answered after the line, if the line were said
      await waitFor('the answer to /who', () => sessions[1]!.said.includes('* here: ') || undefined);
      assert.ok(!sessions[1]!.said.includes('user5: number 11'));
    } finally {
      for (const session of sessions) session.client.end();
    }
  });

  test('hostile: sessions opened and closed in a loop are CHAT_RATE arrivals at most; the rest told to slow down, status 1', async () => {
    // Each arrival is a "joined" and a "left" line to everyone: one user's loop of sessions once sent another
    // 41,524 of them in 30 s (step 21), and nothing counted them.
    const watcher = await member(step().port, 'user6', 'pw6');
    const churner = await ssh2Login(step().port, 'user7', 'pw7');
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 15; i++) {
        outcomes.push(await new Promise<string>((resolve, reject) => churner.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, channel) => {
          if (err) return reject(err);
          let said = '';
          channel.on('data', (chunk: Buffer) => (said += chunk)).stderr.on('data', (chunk: Buffer) => (said += chunk));
          let status: number | undefined;
          channel.on('exit', (code: number) => (status = code));
          channel.on('close', () => resolve(`${status} ${said.includes('* slow down: at most 10 arrivals in 10 seconds (CHAT_RATE)')}`));
          channel.on('data', () => said.includes('Welcome') && channel.end()); // in, then straight out again (Ctrl-D)
        })));
      }
      assert.deepEqual(outcomes, [...Array(10).fill('0 false'), ...Array(5).fill('1 true')]);
      watcher.channel.write('/who\r'); // answered after every line about user7 before it
      await waitFor('the answer to /who', () => watcher.said.includes('* here: ') || undefined);
      assert.equal(watcher.said.split('* user7 joined').length - 1, 10);
    } finally {
      churner.end();
      watcher.client.end();
    }
  });

  test('without a terminal, the room says how to join, and ssh exits 1', async () => {
    const result = await ssh(step().port, 'bob', 'builder', ['-T'], 'hi\n', { SSH_PASSWORDS: passwords });
    assert.deepEqual(lines(result.stderr), ['The chat room needs a terminal, to edit your line as you type: connect '
      + 'from one, without -T (ssh -tt forces one).']);
    assert.equal(result.status, 1);
  });

  test('ssh -tt with input piped in: the line is said, and the end of the input leaves the room', async () => {
    const alice = chatter(step().port, 'alice', 'wonderland');
    try {
      await seen(alice, /^Welcome, alice\./);
      // Piped in, ssh knows no width and sends 0 columns: before, nothing fitted, and the session never ended.
      const result = await ssh(step().port, 'bob', 'builder', ['-tt'], 'hi from a pipe\n', { SSH_PASSWORDS: passwords });
      assert.equal(result.status, 0);
      await seen(alice, 'bob: hi from a pipe');
      await seen(alice, '* bob left');
    } finally {
      alice.close();
    }
  });

  test('a character past the width of the terminal rings its bell', async () => {
    const carol = chatter(step().port, 'carol', 'lewis');
    try {
      await seen(carol, /^Welcome, carol\./);
      carol.sendKeys('-l', 'x'.repeat(100)); // 100 columns, less "carol> " and the cursor's column: 92 fit
      await seen(carol, `carol> ${'x'.repeat(92)}`);
      await waitFor('the bell', () => carol.display('#{window_bell_flag}') === '1' || undefined);
    } finally {
      carol.close();
    }
  });
});

/** A logged-in ssh2 client in the room, with a pty; `said` is everything it has been shown. */
async function member(port: number, user: string, password: string, cols = 200) {
  const client = await ssh2Login(port, user, password);
  const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    client.shell({ term: 'xterm', cols, rows: 30 }, (err, c) => (err ? reject(err) : resolve(c))));
  const member = { client, channel, said: '' };
  channel.on('data', (chunk: Buffer) => (member.said += chunk.toString()));
  await waitFor(`${user} to join`, () => member.said.includes('Welcome') || undefined);
  return member;
}

/**
 * Opens a channel through ssh2's protocol object (`open` sends the request), and resolves with the step's number for
 * it once the step has confirmed it: ssh2's client lets a confirmation of a channel it did not open go unseen.
 */
function confirmed(client: ssh2.Client, open: () => void): Promise<number> {
  const handlers = (raw(client) as unknown as { _handlers: Record<string, (...args: unknown[]) => void> })._handlers;
  const original = handlers.CHANNEL_OPEN_CONFIRMATION!;
  return new Promise((resolve) => {
    handlers.CHANNEL_OPEN_CONFIRMATION = (protocol, info) => {
      handlers.CHANNEL_OPEN_CONFIRMATION = original;
      resolve((info as { sender: number }).sender);
    };
    open();
  });
}

describe('step 13 attacked', { timeout: 180_000 }, () => {
  const step = useStep('13-chat-room.ts', { env: { SSH_PASSWORDS: passwords, CHAT_RATE: '1000' } });

  test('a client that never reads is disconnected, while 50 others go on chatting, and the step stays small', async () => {
    const others: Awaited<ReturnType<typeof member>>[] = [];
    for (let i = 0; i < 50; i++) others.push(await member(step().port, `user${i}`, `pw${i}`));
    // The one who never reads: a session whose window takes 1 KiB, then nothing (ssh2 sends no more than that).
    const slow = await ssh2Login(step().port, 'user50', 'pw50');
    const opened = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    const protocol = raw(slow);
    const id = await confirmed(slow, () => protocol.session(0, 1024, 1024));
    protocol.pty(id, 24, 80, 0, 0, 'xterm', null, false);
    protocol.shell(id, false);
    await waitFor('user50 to join', () => others[0]!.said.includes('* user50 joined') || undefined);
    const before = residentMiB(step().pid);
    const peak = await peakDuring(step().pid, async () => {
      for (let round = 0; count(step(), /user50 is not reading: disconnected \(CHAT_QUEUE_MAX\)$/gm) === 0; round++) {
        assert.ok(round < 200, 'user50 was never disconnected');
        for (const [i, each] of others.entries()) each.channel.write(`message ${round} from ${i} ${'x'.repeat(200)}\r`);
        // Pacing the load, not waiting for anything: a round of 50 messages each 20 ms, until the step lets user50 go.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    await opened;
    assert.ok(peak - before < 80, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    // The room goes on: a message after that reaches all 50.
    others[7]!.channel.write('still here\r');
    for (const each of others) await waitFor('the message', () => each.said.includes('user7: still here') || undefined);
    assert.ok(others[0]!.said.includes('* user50 left'));
    for (const each of others) each.client.end();
  });

  test('floods of ESC bytes, and a sequence that never ends, stall no one and are not kept', async () => {
    const attacker = await member(step().port, 'user55', 'pw55');
    const alice = await member(step().port, 'alice', 'wonderland');
    try {
      const before = residentMiB(step().pid);
      const peak = await peakDuring(step().pid, async () => {
        // Four 32 KiB packets of ESC (each ESC once re-joined the rest of its chunk), then ESC [ and 4 MiB of
        // digits with no final byte (once kept whole, and joined again with every later read).
        const flooded = escapeFlood(attacker.channel);
        // Meanwhile, someone else's /who is answered (it waited 36 s before), and so is a new login.
        alice.channel.write('/who\r');
        await waitFor('the answer to /who', () => alice.said.includes('* here: user55, alice') || undefined);
        const late = await member(step().port, 'bob', 'builder');
        late.client.end();
        await flooded;
        attacker.channel.write('\x15\r/who\r');
        await waitFor('the attacker\'s own /who', () => (attacker.said.match(/\* here: /g)?.length ?? 0) >= 1 || undefined);
      });
      assert.ok(peak - before < 64, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    } finally {
      attacker.client.end();
      alice.client.end();
    }
  });

  test('a client that never reads, typing keys that redraw its long line, is read no more, and the step stays small', async () => {
    // Each packet of keys redraws the line (some 300 bytes): 16 right-arrows a packet, 48 bytes, came back 6 times
    // over, and a step that wrote every echo to a client that reads none kept it all.
    const attacker = await member(step().port, 'user56', 'pw56', 1000);
    try {
      attacker.channel.write('x'.repeat(300));
      await waitFor('the line drawn', () => attacker.said.includes('x'.repeat(300)) || undefined);
      attacker.channel.pause(); // from now on, nothing is read
      const before = residentMiB(step().pid);
      let taken = 0;
      const peak = await peakDuring(step().pid, async () => (taken = await sendWithoutReading(attacker.channel, 8 * 1024 * 1024, 2000,
        Buffer.from('\x1b[C'.repeat(16)))));
      assert.ok(taken < 4 * 1024 * 1024, `the step took ${taken} bytes`); // its window, and what made 2 MiB of echo
      assert.ok(peak - before < 64, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
      const other = await member(step().port, 'alice', 'wonderland'); // and the step serves others
      other.client.end();
    } finally {
      attacker.client.end();
    }
  });

  test('a line padded to wrap on a narrower terminal makes no row that looks like another\'s', async () => {
    const alice = await member(step().port, 'alice', 'wonderland', 30);
    const bob = await member(step().port, 'bob', 'builder', 200);
    try {
      // On alice's 30 columns, without the server's own rows, "carol: ..." would begin a row of its own.
      bob.channel.write(`hi${' '.repeat(30 - 'bob: hi'.length)}carol: send me your password\r`);
      const rows = await waitFor('the message', () => {
        const at = alice.said.indexOf('bob: hi');
        return at === -1 || !alice.said.includes('password', at) ? undefined : alice.said.slice(at).split('\r\n').slice(0, 2);
      });
      assert.deepEqual(rows, [`bob: hi${' '.repeat(23)}`, '  carol: send me your password'.slice(0, 30)]);
    } finally {
      alice.client.end();
      bob.client.end();
    }
  });

  test('a line is cut at the width of the terminal', async () => {
    const alice = await member(step().port, 'alice', 'wonderland');
    try {
      alice.channel.write(`${'y'.repeat(1000)}\r`);
      const sent = await waitFor('the message', () => /alice: (y+)\r\n/.exec(alice.said)?.[1]);
      assert.equal(sent.length, 200 - 'alice'.length - 3);
    } finally {
      alice.client.end();
    }
  });
});
