// Step 18, an Ink app for every session: OpenSSH's ssh in real terminals (tmux), then ssh2's client for the input,
// the sizes and the storms that no person types.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type ssh2 from 'ssh2';
import { peakDuring, raw, residentMiB } from './hostile.ts';
import { lines, root, ssh, ssh2Login, sshEnv, sshOptions, Terminal, useStep, waitFor } from './helpers.ts';

/** `ssh -p PORT USER@localhost` in a tmux terminal of its own, WIDTHxHEIGHT, typing the password through SSH_ASKPASS. */
function user(port: number, name: string, password: string, width = 100, height = 30): Terminal {
  return new Terminal(['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', '-p', String(port), `${name}@localhost`],
    sshEnv(password), width, height);
}

/** Waits until the screen has a row that contains `text`; resolves with that screen (one capture: the next may be mid-redraw). */
const shows = (terminal: Terminal, text: string) => waitFor(`"${text}" on the screen`, () => {
  const screen = terminal.screen();
  return screen.some((row) => row.includes(text)) ? screen : undefined;
});

describe('step 18: an Ink app for every session, in real terminals', { timeout: 120_000 }, () => {
  const step = useStep('18-ink-app.ts');

  test('it draws the list; the arrows and Enter open a page; a note typed is kept; q ends with status 0', async () => {
    const alice = user(step().port, 'alice', 'wonderland');
    try {
      const screen = await shows(alice, 'Who is who in Wonderland');
      assert.ok(screen.some((row) => row.includes('> The White Rabbit')));
      assert.equal(screen.at(-1)!.trimEnd(), ' alice | 100x30');
      assert.ok(screen.every((row) => [...row].length <= 100));
      alice.sendKeys('Down', 'Down', 'Enter');
      await shows(alice, 'It is always six o\'clock at his tea party.');
      alice.sendKeys('-l', 'tea at six');
      await shows(alice, 'Your note: tea at six');
      alice.sendKeys('Enter');
      await shows(alice, '> The Mad Hatter *');
      alice.sendKeys('q');
      assert.equal(await waitFor('ssh to end', () => alice.exitStatus()), 0);
      // The normal screen is back, as it was: nothing of the app is left on it.
      assert.ok(!alice.screen().some((row) => row.includes('Wonderland')), alice.screen().join('\n'));
    } finally {
      alice.close();
    }
  });

  test('two users at once: each sees only their own state; Ctrl-C ends a session with status 0', async () => {
    const alice = user(step().port, 'alice', 'wonderland');
    const bob = user(step().port, 'bob', 'builder');
    try {
      await shows(alice, 'Who is who in Wonderland');
      await shows(bob, 'Who is who in Wonderland');
      alice.sendKeys('Down', 'Enter');
      await shows(alice, 'Your note:');
      alice.sendKeys('-l', 'grin');
      alice.sendKeys('Enter');
      await shows(alice, '> The Cheshire Cat *');
      bob.sendKeys('Up');
      await shows(bob, '> The Caterpillar');
      assert.ok(bob.screen().some((row) => row.includes('  The Cheshire Cat ') && !row.includes('*')));
      assert.ok(alice.screen().some((row) => row.includes('> The Cheshire Cat *')));
      assert.equal(bob.screen().at(-1)!.trimEnd(), ' bob | 100x30');
      bob.sendKeys('C-c');
      assert.equal(await waitFor('bob\'s ssh to end', () => bob.exitStatus()), 0);
      assert.ok(alice.screen().some((row) => row.includes('> The Cheshire Cat *')), 'alice goes on');
    } finally {
      alice.close();
      bob.close();
    }
  });

  test('a resize to 50x16 lays the screen out again, within 50 columns', async () => {
    const alice = user(step().port, 'alice', 'wonderland');
    try {
      await shows(alice, 'Who is who in Wonderland');
      alice.resize(50, 16);
      const screen = await shows(alice, 'alice | 50x16');
      assert.equal(screen.length, 16);
      assert.deepEqual(screen.filter((row) => [...row].length > 50), []);
      assert.match(screen[0]!, /^╭─{48}╮$/);
    } finally {
      alice.close();
    }
  });

  test('the screen the lesson shows for a 60x14 terminal is the one a 60x14 terminal shows', async () => {
    const lesson = readFileSync(join(root, 'steps', '18-ink-app.md'), 'utf8');
    const [, cols, rows, block] = /<!-- screen: (\d+)x(\d+) -->\n```console\n([^`]*)```/.exec(lesson)!;
    const alice = user(step().port, 'alice', 'wonderland', Number(cols), Number(rows));
    try {
      const expected = block!.trimEnd().split('\n');
      await waitFor('the lesson\'s screen', () => (alice.screen().join('\n') === expected.join('\n') || undefined),
        5000).catch(() => assert.deepEqual(alice.screen(), expected));
    } finally {
      alice.close();
    }
  });

  test('without a terminal, or with a command: one line that says so, and status 1', async () => {
    const expected = ['This app draws on a terminal, and none was requested: connect with ssh, without -T or a command.'];
    for (const args of [['-T'], ['whoami']]) {
      const result = await ssh(step().port, 'alice', 'wonderland', args, '');
      assert.deepEqual([lines(result.stderr), result.stdout, result.status], [expected, '', 1], args.join(' '));
    }
  });
});

/** A logged-in ssh2 client's session with a pty of `cols` x `rows` and the app in it; `said` is all it was sent. */
async function session(port: number, cols: number, rows: number, term = 'xterm') {
  const client = await ssh2Login(port, 'alice', 'wonderland');
  client.on('error', () => {});
  const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    client.shell({ term, cols, rows }, (err, c) => (err ? reject(err) : resolve(c))));
  let said = '';
  channel.on('data', (chunk: Buffer) => (said += chunk));
  return { client, channel, said: () => said };
}

describe('step 18 attacked', { timeout: 120_000 }, () => {
  const step = useStep('18-ink-app.ts');

  test('colour comes from the client\'s TERM: cyan for xterm, none for vt100, whatever the server\'s own', async () => {
    for (const [term, coloured] of [['xterm-256color', true], ['vt100', false]] as const) {
      const { client, said } = await session(step().port, 80, 24, term);
      await waitFor('the app', () => said().includes('Who is who') || undefined);
      // SGR 36 is cyan; 30 to 37 and 90 to 97, any colour at all.
      assert.equal(/\x1b\[(3[0-7]|9[0-7])m/.test(said()), coloured, term);
      client.end();
    }
  });

  /** A new session in a real terminal still gets the app drawn; the step logged no internal error. */
  const stillDraws = async () => {
    const terminal = user(step().port, 'alice', 'wonderland');
    try {
      await shows(terminal, 'Who is who in Wonderland');
    } finally {
      terminal.close();
    }
    assert.doesNotMatch(step().output(), /internal error/);
  };

  test('keys that arrive in one read are pressed one after another: Enter, Delete and q are keys, not text', async () => {
    const { client, channel, said } = await session(step().port, 80, 24);
    let status: number | undefined;
    channel.on('exit', (code: number) => (status = code));
    await waitFor('the app', () => said().includes('Who is who') || undefined);
    channel.write('\x1b[B\r'); // Down, Enter: the Cheshire Cat's page
    await waitFor('the page', () => said().includes('Your note:') || undefined);
    // Each write below is what a fast typist's keys are when the step reads them at once.
    channel.write('grinx\x7f\r'); // a note, a typo taken back, Enter
    await waitFor('the list, the note kept', () => said().includes('> The Cheshire Cat *') || undefined);
    channel.write('\r'); // the page again: the note is "grin"
    await waitFor('the note', () => /Your note: grin\x1b\[7m/.test(said()) || undefined);
    channel.write('\rq'); // Enter (back to the list), then q: the app ends, with status 0
    assert.equal(await waitFor('the app to end', () => status), 0);
    client.end();
  });

  test('64 KiB of random bytes, and escape sequences that are no keys, typed into the list and into a note', async () => {
    const { client, channel, said } = await session(step().port, 80, 24);
    let closed = false;
    channel.on('close', () => (closed = true));
    await waitFor('the app', () => said().includes('Who is who') || undefined);
    /** 64 KiB of random bytes, less those that would end the app (q, Ctrl-C) or the page (Enter, Esc), or take from the note (Backspace, Delete). */
    const garbage = () => Buffer.from([...randomBytes(80 * 1024)].filter((byte) => ![0x71, 0x03, 0x0d, 0x0a, 0x1b, 0x08, 0x7f].includes(byte)));
    channel.write('\r'); // a person's page, first: the note takes what is typed
    await waitFor('the page', () => said().includes('Your note:') || undefined);
    channel.write(garbage());
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The app drew only its own: the note is cut to 60 characters, whatever came in.
    // (The note's text runs up to its cursor, an inverse space: ESC [7m.)
    const notes = [...said().matchAll(/Your note: (.*?)\x1b\[7m/g)].map((m) => [...m[1]!].length);
    assert.ok(notes.length > 0 && notes.every((length) => length <= 60), JSON.stringify(notes));
    assert.equal(notes.at(-1), 60);
    // Back to the list (Esc), and the same there, with escape sequences that are no keys.
    channel.write('\x1b');
    await new Promise((resolve) => setTimeout(resolve, 300));
    channel.write('\x1b[999;999R\x1b]0;title\x07\x1b[?1049l\x1bP$q\x1b\\\x1b[200~pasted\x1b[201~');
    channel.write(garbage());
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(closed, false, 'the app is still there');
    client.end();
    await stillDraws();
  });

  test('a megabyte of keys that are keys (Enter, Delete, a letter), each write a storm of them: the step grows little, the app answers', async () => {
    const { client, channel, said } = await session(step().port, 80, 24);
    let status: number | undefined;
    channel.on('exit', (code: number) => (status = code));
    await waitFor('the app', () => said().includes('Who is who') || undefined);
    const before = residentMiB(step().pid);
    const peak = await peakDuring(step().pid, async () => {
      for (let i = 0; i < 64; i++) channel.write('x\r\x7f'.repeat(5462)); // 16 KiB each: the page opened and closed, a note
      await new Promise((resolve) => setTimeout(resolve, 3000));
    });
    assert.ok(peak - before < 100, `grew by ${(peak - before).toFixed(0)} MiB`);
    channel.write('\x1b'); // back to the list, if a page is open
    await new Promise((resolve) => setTimeout(resolve, 300));
    channel.write('q');
    assert.equal(await waitFor('the app to end', () => status), 0);
    client.end();
    await stillDraws();
  });

  test('a 1x1 terminal, a 10000x10000 one, and a thousand window-changes a second, never read: the step goes on', async () => {
    const small = await session(step().port, 1, 1);
    const before = residentMiB(step().pid);
    const peak = await peakDuring(step().pid, async () => {
      const big = await session(step().port, 10_000, 10_000);
      const proto = raw(big.client);
      big.channel.pause(); // reads nothing: frames must not pile up
      for (let i = 0; i < 1000; i++) {
        proto.windowChange(0, 1 + (i % 3) * 5000, 1 + (i % 2) * 5000, 0, 0);
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
      big.client.end();
    });
    assert.ok(peak - before < 150, `grew by ${(peak - before).toFixed(0)} MiB`);
    await waitFor('the small one drawn', () => small.said().length > 0 || undefined);
    small.client.end();
    await stillDraws();
  });
});
