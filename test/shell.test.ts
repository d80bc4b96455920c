// Step 14, a real shell: OpenSSH with a key in a real terminal, then ssh2's client for what OpenSSH cannot send.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { atPrompt, count, execute, ssh, ssh2Login, sshOptions, stalled, temporaryDir, Terminal, useStep, waitFor } from './helpers.ts';
import { peakDuring, raw, rawSession, residentMiB, socketOf } from './hostile.ts';

const dir = temporaryDir();
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
writeFileSync(join(dir, 'alice'), readFileSync(join(dir, 'key.pub')));
const withKey = ['-i', join(dir, 'key'), '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR'];
const keyLogin = { username: 'alice', privateKey: readFileSync(join(dir, 'key')) };

/** Whether an error reading /proc says that the process or thread is gone: it ended between the listing and the read. */
const gone = (err: unknown) => ['ENOENT', 'ESRCH'].includes((err as NodeJS.ErrnoException).code ?? '');

/** A file of /proc, or undefined when its process or thread has ended. */
function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
}

/**
 * The programs the step runs for its clients: its child processes, less tsx's compiler. tsx starts esbuild (a
 * service, which stays until the step ends) whenever a file it loads is not in its cache yet: on a fresh clone, or
 * once a file has changed. Threads of the step come and go as this reads (node-pty waits for each program in a
 * thread of its own), and so do children: what ended as it was read is left out.
 */
function children(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .flatMap((task) => (readProc(`/proc/${pid}/task/${task}/children`) ?? '').trim().split(/\s+/).filter(Boolean).map(Number))
    .filter((child) => {
      const command = readProc(`/proc/${child}/cmdline`);
      return command !== undefined && !/(^|\/)esbuild\0--service=/.test(command);
    });
}

/** The processes `pid` started, at any depth, as ps lists them: pid, state (a `+` says "in the foreground of its terminal") and command line. */
function under(pid: number): { pid: number; stat: string; args: string }[] {
  const rows = execFileSync('ps', ['-eo', 'pid,ppid,stat,args'], { encoding: 'utf8' }).split('\n').slice(1)
    .map((row) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(row)).filter((match) => match !== null);
  const parent = new Map(rows.map(([, child, ppid]) => [Number(child), Number(ppid)]));
  const isUnder = (child: number): boolean => {
    const up = parent.get(child);
    return up === pid || (up !== undefined && up > 1 && isUnder(up));
  };
  return rows.filter(([, child]) => isUnder(Number(child))).map(([, child, , stat, args]) => ({ pid: Number(child), stat: stat!, args: args! }));
}

/** The `sleep 30N` processes that `pid` started, at any depth: the pids, not every sleep on the machine. */
function sleepsUnder(pid: number): number[] {
  return under(pid).filter(({ args }) => /^sleep 30[0-2]$/.test(args)).map((each) => each.pid);
}

/** Which of `pids` are still those sleeps, with their parents and session leaders (ps): whose they are now. */
function leftover(pids: number[]): string {
  const rows = execFileSync('ps', ['-eo', 'pid,ppid,pgid,sid,tty,stat,lstart,args'], { encoding: 'utf8' }).split('\n');
  const fields = (row: string) => row.trim().split(/\s+/).slice(0, 4).map(Number);
  const sleeps = rows.filter((row) => pids.includes(fields(row)[0]!) && / sleep 30[0-2]$/.test(row));
  const related = new Set(sleeps.flatMap((row) => fields(row)).filter((pid) => pid > 1));
  return sleeps.length === 0 ? '' : [rows[0], ...rows.slice(1).filter((row) => related.has(fields(row)[0]!))].join('\n');
}

/**
 * Runs `command` through ssh2's client, and `answer`s what it has printed so far at each chunk (to type or signal
 * once it is ready); resolves with all it printed and how it ended.
 */
function converse(client: ssh2.Client, command: string, options: ssh2.ExecOptions,
  answer: (out: string, channel: ssh2.ClientChannel) => unknown) {
  return new Promise<{ out: string; err: string; code: number | null; signal?: string }>((resolve, reject) =>
    client.exec(command, options, (err, channel) => {
      if (err) return reject(err);
      const result = { out: '', err: '', code: null as number | null, signal: undefined as string | undefined };
      channel.on('data', (chunk: Buffer) => answer(result.out += chunk, channel));
      channel.stderr.on('data', (chunk: Buffer) => (result.err += chunk));
      channel.on('exit', (code: number | null, name?: string) => Object.assign(result, { code, signal: name }));
      channel.on('close', () => resolve(result));
    }));
}

describe('step 14: a real shell', { timeout: 120_000 }, () => {
  /** alice, logged in with her key by ssh2's client. */
  const keyClient = async () => {
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => client.once('ready', resolve).on('error', reject)
      .connect({ host: '127.0.0.1', port: step().port, ...keyLogin }));
    return client;
  };
  const step = useStep('14-real-shell.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: dir, SHELL: '/bin/sh', HOME: dir } }); // a home with files in it

  test('in a terminal: the prompt, a sum, the size that follows the window, and exit 3', async () => {
    await atPrompt(['ssh', ...sshOptions, ...withKey, '-p', String(step().port), 'alice@localhost'], {}, async (terminal) => {
      assert.ok((await terminal.typeLine('echo $((6*7)); stty size', '30 100')).includes('42'));
      terminal.resize(120, 40);
      // ssh tells the step, which sizes the pty: the shell's terminal is 40x120 before `stty size` is typed.
      const [shell, ...more] = children(step().pid);
      assert.deepEqual(more, []);
      const tty = readlinkSync(`/proc/${shell}/fd/0`);
      await waitFor('the new size to reach the shell\'s terminal', () =>
        execFileSync('stty', ['-F', tty, 'size'], { encoding: 'utf8' }) === '40 120\n' || undefined);
      await terminal.typeLine('stty size', '40 120');
      assert.equal(await terminal.exitWith(3), 3);
    });
  });

  test('the terminal keeps the modes of the client\'s: its own Ctrl-C (here Ctrl-G), and control characters not shown', async () => {
    const connect = ['ssh', ...sshOptions, ...withKey, '-p', String(step().port), 'alice@localhost'];
    const terminal = new Terminal(['sh', '-c', `stty intr ^G -echoctl && exec ${connect.map((word) => `'${word}'`).join(' ')}`], {});
    try {
      await waitFor('the prompt', () => /^[$#] ?$/.test(terminal.screen().at(-1) ?? '') || undefined);
      terminal.sendKeys('-l', 'stty -a | grep -o -e "intr = [^;]*" -e "-*echoctl"');
      terminal.sendKeys('Enter');
      // Wait for the prompt after the output: the typed command line has "echoctl" in it too.
      const screen = await waitFor('the modes and the next prompt', () => {
        const rows = terminal.screen();
        return rows.length >= 3 && rows.at(-3)?.startsWith('intr') && /^[$#] ?$/.test(rows.at(-1) ?? '') ? rows : undefined;
      });
      assert.deepEqual(screen.slice(-3, -1), ['intr = ^G', '-echoctl']);
      terminal.sendKeys('-l', 'sleep 100');
      terminal.sendKeys('Enter');
      // Ctrl-G once sleep is the terminal's foreground job: pressed before, it interrupts the shell instead (which
      // prints "ended by 130" too), or the shell as it starts sleep, which then runs its 100 seconds.
      const sleeping = await waitFor('sleep in the foreground', () =>
        under(step().pid).find(({ args, stat }) => args === 'sleep 100' && stat.includes('+')));
      terminal.sendKeys('C-g');
      // An interrupt flushes what was typed after it and not yet read (NOFLSH is off, as on every terminal): when
      // ssh sent Ctrl-G and the next line in one packet, the line was lost. So it is typed once sleep has gone and
      // the shell's prompt is back.
      await waitFor('sleep to be interrupted', () => !under(step().pid).some(({ pid }) => pid === sleeping.pid) || undefined);
      await waitFor('the prompt after it', () => /^[$#] ?$/.test(terminal.screen().at(-1) ?? '') || undefined);
      terminal.sendKeys('-l', 'echo "ended by $?"');
      terminal.sendKeys('Enter');
      await waitFor('the status', () => terminal.screen().includes('ended by 130') || undefined);
      terminal.sendKeys('-l', 'exit');
      terminal.sendKeys('Enter');
      assert.equal(await waitFor('ssh to end', () => terminal.exitStatus()), 0);
    } finally {
      terminal.close();
    }
  });

  test('a command: stdout and stderr apart, and its exit status', async () => {
    const result = await ssh(step().port, 'alice', '', [...withKey, 'echo out; echo err >&2; exit 5']);
    assert.deepEqual(result, { stdout: 'out\n', stderr: 'err\n', status: 5 });
    // With a terminal (-tt) and input that ends: the program reads to its end, and ends.
    const lines = await ssh(step().port, 'alice', '', [...withKey, '-tt', 'wc -l'], 'one\ntwo\n');
    assert.deepEqual([lines.stdout, lines.status], ['one\r\ntwo\r\n2\r\n', 0]); // the terminal's echo, then wc's count
  });

  test('a password is refused, with a log line that says why', async () => {
    await assert.rejects(ssh2Login(step().port, 'alice', 'wonderland'));
    await waitFor('the log line', () => count(step(), /password refused for alice: this step takes keys alone$/gm) || undefined);
  });

  test('EOF reaches the program; env only from the allow-list; a signal is delivered; a kill is reported', async () => {
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => client.once('ready', resolve).on('error', reject)
      .connect({ host: '127.0.0.1', port: step().port, ...keyLogin }));
    try {
      assert.deepEqual(await execute(client, 'cat', {}, 'piped in'), { out: 'piped in', err: '', code: 0, signal: undefined });
      // In a terminal, the client's EOF is typed as the terminal's EOF character (Ctrl-D), and cat ends.
      const eof = await execute(client, 'cat', { pty: { term: 'xterm' } }, 'typed\n');
      assert.deepEqual([eof.out, eof.code], ['typed\r\ntyped\r\n', 0]); // the terminal's echo, then cat's copy
      // The client's own EOF character, here Ctrl-B, once the program has started (and the modes are set).
      const own = await converse(client, 'echo ready; cat', { pty: { term: 'xterm', modes: { VEOF: 2, ECHO: 0 } } },
        (out, channel) => out === 'ready\r\n' && channel.end('typed\n'));
      assert.deepEqual(own, { out: 'ready\r\ntyped\r\n', err: '', code: 0, signal: undefined });
      const env = await execute(client, 'echo "$LANG|$LC_ALL|$EVIL"', { env: { LANG: 'C.UTF-8', LC_ALL: 'C', EVIL: 'yes' } });
      assert.equal(env.out, 'C.UTF-8|C|\n');
      // A client sending many variables, or long ones, gets the first 32 and no more than 8 KiB in all (the 9 KB one
      // is refused, and the short ones after it still taken): the rest is refused, not kept.
      const many = Object.fromEntries([
        ...Array.from({ length: 20 }, (unused, i) => [`LC_A${i}`, 'x']),
        ['LC_LONG', 'y'.repeat(9000)],
        ...Array.from({ length: 30 }, (unused, i) => [`LC_B${i}`, 'x']),
      ]);
      const bounded = await execute(client, 'env | grep -c ^LC_; echo "${#LC_LONG} $LC_B11|$LC_B12"', { env: many });
      assert.equal(bounded.out, '32\n0 x|\n');
      // The signal once the trap is set: the shell says so.
      const trapped = await converse(client, 'trap "echo got INT; exit 7" INT; echo ready; while :; do sleep 0.1; done', {},
        (out, channel) => out === 'ready\n' && channel.signal('INT'));
      assert.deepEqual(trapped, { out: 'ready\ngot INT\n', err: '', code: 7, signal: undefined });
      const killed = await execute(client, 'kill -TERM $$');
      assert.deepEqual([killed.code, killed.signal], [null, 'SIGTERM']); // ssh2's client names it with SIG
    } finally {
      client.end();
    }
  });

  test('modes no terminal can take, and characters a shell would expand, are left out or kept as they are', async () => {
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => client.once('ready', resolve).on('error', reject)
      .connect({ host: '127.0.0.1', port: step().port, ...keyLogin }));
    try {
      // '*' and ';' as characters, a space (left out), values above 255 and flags of 7 (left out), a parity (left out).
      const modes = { VINTR: 42, VQUIT: 59, VERASE: 32, VKILL: 1000, VEOL: 255, ECHOE: 7, PARENB: 1, IXANY: 1, CS7: 1 };
      const result = await execute(client, 'stty -a', { pty: { term: 'xterm', modes: modes as never } }); // as a client may send them
      const settings = result.out.replace(/\r\n/g, ' ');
      assert.match(settings, /intr = \*; quit = ;; erase = \^\?; kill = \^U; eof = \^D; eol = <undef>;/);
      assert.match(settings, / ixany /);
      assert.match(settings, / echoe /);
      assert.doesNotMatch(settings, /stty:/);
      assert.equal(result.code, 0);
    } finally {
      client.end();
    }
  });

  test('typed UTF-8 reaches the program as typed; a client that reads nothing of `yes` in a pty does not grow the step', async () => {
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => client.once('ready', resolve).on('error', reject)
      .connect({ host: '127.0.0.1', port: step().port, ...keyLogin }));
    try {
      // In a pty, with echo off and raw input (typed once the terminal is so): what arrives is printed back as hex.
      const bytes = await converse(client, 'stty raw -echo; echo ready; head -c 4 | od -An -tx1',
        { pty: { term: 'xterm', cols: 80, rows: 24 } }, (out, channel) => out === 'ready\n' && channel.write(Buffer.from('é€')));
      assert.deepEqual(bytes, { out: 'ready\n c3 a9 e2 82\n', err: '', code: 0, signal: undefined }); // raw: no CR added
      const before = residentMiB(step().pid);
      const peak = await peakDuring(step().pid, async () => {
        const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
          client.exec('yes', { pty: { term: 'xterm', cols: 80, rows: 24 } }, (err, c) => (err ? reject(err) : resolve(c))));
        channel.pause(); // and never read: the window ssh2 gave runs out, and then the step must stop reading `yes`
        const yes = await waitFor('yes', () => under(step().pid).find(({ args }) => args === 'yes'));
        // Stopped: `yes` has written nothing for half a second, its terminal full. A step that read on never gets here.
        let [written, since] = [-1, Date.now()];
        await waitFor('`yes` to be stopped', () => {
          const now = Number(/^wchar: (\d+)$/m.exec(readProc(`/proc/${yes.pid}/io`) ?? '')?.[1]);
          const asleep = / S /.test(readProc(`/proc/${yes.pid}/stat`)?.replace(/^.*\)/s, '') ?? ''); // blocked, not waiting for a CPU
          if (now !== written || !asleep) [written, since] = [now, Date.now()];
          return Date.now() - since >= 500 || undefined;
        });
        channel.close();
      });
      assert.ok(peak - before < 30, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    } finally {
      client.end();
    }
  });

  test('hostile: cat /dev/zero for a client that gives a 4 GiB window, then reads its socket no more: the step stays small', async () => {
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => client.once('ready', resolve).on('error', reject)
      .connect({ host: '127.0.0.1', port: step().port, ...keyLogin }));
    client.on('error', () => {});
    try {
      const proto = raw(client);
      const id = await rawSession(client, 2 ** 32 - 1); // a window of 4 GiB
      const before = residentMiB(step().pid);
      const peak = await peakDuring(step().pid, async () => {
        socketOf(client).pause(); // reads no more
        proto.exec(id, 'cat /dev/zero', false);
        const cat = await waitFor('cat', () => under(step().pid).find(({ args }) => args === 'cat /dev/zero'));
        // Stopped: cat has written nothing for half a second, its pipe full. Unpatched (ssh2 part 033), everything
        // it wrote went to the socket's buffer: the step grew by some 230 MiB a second, past 3.6 GiB in 10 s.
        let [written, since] = [-1, Date.now()];
        await waitFor('cat to be stopped', () => {
          const now = Number(/^wchar: (\d+)$/m.exec(readProc(`/proc/${cat.pid}/io`) ?? '')?.[1]);
          if (now !== written) [written, since] = [now, Date.now()];
          return Date.now() - since >= 500 || undefined;
        });
      });
      assert.ok(peak - before < 64, `grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
    } finally {
      client.destroy();
    }
  });

  test('hostile: 1 MiB pasted into a raw terminal whose program reads nothing yet: the step waits for it, and serves others meanwhile', async () => {
    // A terminal takes some 64 KiB of raw input that nobody reads, then no more: a server that kept writing (node-pty
    // does) stopped there, whole, for as long as the program did not read.
    const client = await keyClient();
    const go = join(dir, 'go');
    try {
      let pasted = false;
      const reading = converse(client, 'stty raw -echo; echo ready; while [ ! -e go ]; do sleep 0.1; done; head -c 1048576 | wc -c',
        { pty: { term: 'xterm', cols: 80, rows: 24 } }, (out, channel) => {
          if (out === 'ready\n' && !pasted) channel.write(Buffer.alloc(1024 * 1024, 'a')), (pasted = true);
        });
      await waitFor('the paste', () => pasted || undefined);
      assert.deepEqual(await ssh(step().port, 'alice', '', [...withKey, 'echo meanwhile']), { stdout: 'meanwhile\n', stderr: '', status: 0 });
      writeFileSync(go, ''); // now the program reads, and all of the paste goes in
      assert.deepEqual(await reading, { out: 'ready\n1048576\n', err: '', code: 0, signal: undefined });
    } finally {
      client.end();
      rmSync(go, { force: true });
    }
  });

  test('hostile: a window-change to 0x0, a NUL in a command or in LANG: answered, and the connection goes on', async () => {
    const client = await keyClient();
    try {
      // (Each of these threw in the step's listener, and ssh2 then ended the whole connection.)
      const resized = await converse(client, 'echo ready; read line; echo "got $line"', { pty: { term: 'xterm', cols: 80, rows: 24 } },
        (out, channel) => out === 'ready\r\n' && (channel.setWindow(0, 0, 0, 0), channel.write('x\r')));
      assert.deepEqual([resized.out.split('\r\n').at(-2), resized.code], ['got x', 0]);
      // A terminal's size is 16 bits: asked for more, the terminal is 65535 wide and tall, never the size wrapped
      // around (70,000 was 4,464; 65,536 was 0).
      for (const [cols, rows] of [[70_000, 65_536], [0xffffffff, 0xffffffff]]) {
        const sized = await converse(client, 'echo ready; read line; stty size', { pty: { term: 'xterm', cols: 80, rows: 24 } },
          (out, channel) => out === 'ready\r\n' && (channel.setWindow(rows!, cols!, 0, 0), channel.write('x\r')));
        assert.deepEqual([sized.out.split('\r\n').at(-2), sized.code], ['65535 65535', 0], `${cols}x${rows}`);
      }
      // As sshd: the command ends at its NUL; an environment cannot hold one, so that LANG is refused.
      assert.deepEqual(await converse(client, 'echo before\0after', {}, () => {}), { out: 'before\n', err: '', code: 0, signal: undefined });
      assert.deepEqual(await converse(client, 'echo "[$LANG]"', { env: { LANG: 'C\0.UTF-8' } }, () => {}),
        { out: '[]\n', err: '', code: 0, signal: undefined });
    } finally {
      client.end();
    }
  });

  test('a client that vanishes leaves no process behind, with a terminal or without', async () => {
    for (const args of [['-tt', 'sleep 300'], ['-T', 'sleep 301 & sleep 302']]) {
      const terminal = new Terminal(['ssh', ...sshOptions, ...withKey, ...args.slice(0, 1), '-p', String(step().port),
        'alice@localhost', args[1]!], {});
      // Every sleep running before the client goes (one forked as the terminal hangs up may miss the kernel's SIGHUP).
      // The step's own, by their pids: a sleep of the same length elsewhere on the machine is not the step's.
      const started = await waitFor('the program', () => {
        const pids = sleepsUnder(step().pid);
        return pids.length === args[1]!.split('&').length ? pids : undefined;
      });
      terminal.close(); // tmux ends, and takes ssh with it: the connection drops
      await waitFor('no child left', () => (children(step().pid).length === 0) || undefined);
      await waitFor('no sleep left', () => (leftover(started) === '') || undefined, 5000).catch(() => assert.equal(leftover(started), ''));
    }
  });

  test('a client that vanishes while what it typed waits for a program that reads none: the program is hung up all the same', async () => {
    const client = await keyClient();
    try {
      const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
        client.exec('sleep 300', (err, c) => (err ? reject(err) : resolve(c))));
      channel.on('error', () => {});
      const started = await waitFor('the program', () => (sleepsUnder(step().pid).length === 1 ? sleepsUnder(step().pid) : undefined));
      // Typed ahead, never read: the pipe to the program fills, then ssh's window, and the step stops reading the
      // channel with some of it still waiting there (ssh2 closed such a channel only once it was read: never).
      channel.write(Buffer.alloc(16 * 2 ** 20, 0x61));
      await stalled('the step to stop taking what is typed', step().pid);
      socketOf(client).destroy(); // gone, without a word
      await waitFor('no child left', () => (children(step().pid).length === 0) || undefined);
      assert.equal(leftover(started), '');
    } finally {
      client.end();
    }
  });

  test('a vanished client\'s program that ignores SIGHUP: without a terminal its pipes close on it, with one the step lets the terminal go', async () => {
    const processes = (pattern: RegExp) => execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n')
      .filter((line) => pattern.test(line)).map((line) => Number(line.trim().split(' ')[0]));
    const terminals = () => readdirSync(`/proc/${step().pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${step().pid}/fd/${fd}`) === '/dev/ptmx';
      } catch {
        return false; // closed while we looked
      }
    }).length;
    try {
      // Without a terminal: it writes on, and the first write after the pipes close ends it (SIGPIPE), as from sshd.
      const piped = new Terminal(['ssh', ...sshOptions, ...withKey, '-T', '-p', String(step().port), 'alice@localhost',
        'trap "" HUP; while :; do echo still; sleep 0.31; done'], {});
      await waitFor('the program', () => processes(/ sleep 0\.31$/).length > 0 || undefined);
      piped.close();
      await waitFor('the program to end', () => (children(step().pid).length === 0) || undefined);
      // With one: the kernel hangs up what the terminal belongs to; what ignores that may go on (as under sshd:
      // the lesson says why), but the step holds nothing of it: its side of the terminal is closed.
      const before = terminals();
      const tty = new Terminal(['ssh', ...sshOptions, ...withKey, '-tt', '-p', String(step().port), 'alice@localhost',
        'trap "" HUP; while :; do sleep 0.32; done'], {});
      await waitFor('the program', () => processes(/ sleep 0\.32$/).length > 0 || undefined);
      assert.equal(terminals(), before + 1);
      tty.close();
      await waitFor('the terminal to be let go', () => (terminals() === before) || undefined);
    } finally {
      for (const pid of processes(/trap "" HUP; while :; do (echo still; )?sleep 0\.3[12]; done/)) process.kill(pid, 'SIGKILL');
    }
  });
});
