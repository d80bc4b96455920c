// Step 14, built on step 04: a real shell. Your own shell, in a pseudo-terminal, for whoever holds a listed key.
// Run: npx tsx <this file>         Connect: ssh -p 2022 -i ~/.ssh/conch-steps-demo alice@localhost (step 09's key)
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import { spawn } from 'node:child_process';
import ssh2 from 'ssh2';
import type { PseudoTtyInfo, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { keyMayLogIn } from '../shared/login/key-login.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { setClientEnv } from '../shared/channels/client-env.ts';
import { deliver, signalName } from '../shared/channels/signals.ts';
import { endOfInput, sttyArguments } from '../shared/channels/terminal-modes.ts';
import { typeInto } from '../shared/channels/pty-input.ts';

const { Server } = ssh2;

// A native module, with binaries built in advance for each system: a runtime that cannot load it gets no terminals.
const spawnPty = await import('@lydell/node-pty').then((module) => module.spawn, (err: Error) => {
  console.log(`no terminals: this runtime cannot load @lydell/node-pty (${err.message.split('\n')[0]})`);
});
/** The shell everyone gets: the one of the user running the step. */
const shell = process.env.SHELL || '/bin/sh';

/** Tells `ssh` how the program ended, by its status or its signal, and closes the channel. */
function ended(channel: ServerChannel, status: number | null, signal: string | null): void {
  if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '');
  else channel.exit(status ?? 0);
  channel.end();
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  client.on('authentication', (ctx) => {
    if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) return ctx.accept();
    // A shell of your own behind the tutorial's published passwords would be anyone's: keys alone log in.
    if (ctx.method === 'password') log(info, `password refused for ${ctx.username}: this step takes keys alone`);
    ctx.reject(['publickey']);
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    let terminal: PseudoTtyInfo | undefined; // the terminal the client asked for, if any
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' };
    // What reaches the running program, once there is one, and what hangs it up.
    let send: (signal: NodeJS.Signals) => void = () => {};
    let hangUp = () => {};
    let resize: (cols: number, rows: number) => void = () => {};
    session.on('pty', (accept, reject, info) => {
      terminal = info;
      accept?.(); // undefined when the client wants no reply
    });
    session.on('env', (accept, reject, { key, val }) => {
      // LANG and LC_* alone, as sshd's AcceptEnv; a few, and short (a client could send thousands).
      if (setClientEnv(env, key, val)) accept?.();
      else reject?.();
    });
    session.on('window-change', (accept, reject, { cols, rows }) => {
      accept?.();
      if (terminal) [terminal.cols, terminal.rows] = [cols, rows];
      resize(cols, rows);
    });
    session.on('signal', (accept, reject, { name }) => {
      accept?.();
      deliver(send, name);
    });

    /** Runs `command` (or the shell itself) in a pty if the client asked for one, else with pipes. */
    const run = (channel: ServerChannel, command?: string) => {
      // (The command ends at a NUL, if it holds one, as it does for sshd, which hands it on as a C string.)
      const args = command === undefined ? [] : ['-c', command.split('\0')[0]!];
      // The channel closes (the program has ended, or the client is gone): a program still running is hung up, as
      // sshd hangs it up when the connection drops. (What can outlive that, and why: the lesson.)
      channel.on('close', () => hangUp());
      if (terminal && spawnPty) {
        const { term: name, cols, rows, modes } = terminal;
        // A terminal's size is 16 bits: 65,536 columns would be 0 (and 70,000 would be 4,464), so more is 65,535.
        const size = { cols: Math.min(cols || 80, 0xffff), rows: Math.min(rows || 24, 0xffff) };
        // The client's modes (its Ctrl-C, its echo, ...) are set by stty, run in the new terminal just before the
        // program takes its place: node-pty cannot set them. $0 is the list of modes, in words without spaces.
        const setModes = ['-c', 'set -f; [ -z "$0" ] || stty $0; exec "$@"', sttyArguments(modes), shell, ...args];
        const program = spawnPty('/bin/sh', setModes, { name, ...size, cwd: env.HOME, env: { ...env, TERM: name } });
        // Both ways no faster than the other side takes it: a client that reads nothing stops the program's output.
        program.onData((data) => {
          if (channel.write(data)) return;
          program.pause();
          channel.once('drain', () => program.resume());
        });
        // What is typed goes in as fast as the program reads it: a full terminal would stop node-pty, and the server.
        const typed = typeInto(channel, program);
        // A terminal has no end of input but the character that says so: the client's EOF is typed as its Ctrl-D.
        channel.on('end', () => typed.end(endOfInput(modes) ?? ''));
        program.onExit(({ exitCode, signal }) => ended(channel, exitCode, signal ? signalName(signal) : null));
        resize = (cols, rows) => {
          try {
            if (cols > 0 && rows > 0) program.resize(Math.min(cols, 0xffff), Math.min(rows, 0xffff)); // (0 is no size: it stays)
          } catch {} // the terminal has closed already: the program has ended, and the channel is ending
        };
        send = (signal) => program.kill(signal);
        // SIGHUP to its process group (the pty made it a session of its own), as a terminal hanging up sends it,
        // then the terminal closes: reads and writes to it fail from then on. The step keeps nothing of it.
        hangUp = () => {
          deliver((signal) => process.kill(-program.pid, signal), 'HUP');
          typed.stop();
          program.destroy();
        };
        return;
      }
      if (terminal) {
        channel.stderr.write('This server cannot make terminals: connect with ssh -T.\n');
        return ended(channel, 1, null);
      }
      // Its own process group (detached), so that a hang-up reaches what it started too.
      const child = spawn(shell, args, { cwd: env.HOME, env, detached: true, stdio: 'pipe' });
      child.stdout.pipe(channel, { end: false });
      child.stderr.pipe(channel.stderr, { end: false });
      channel.pipe(child.stdin);
      child.stdin.on('error', () => {}); // the program may end before reading all its input
      child.on('close', (status, name) => ended(channel, status, name));
      child.on('error', (err) => (log(info, `cannot run ${shell}: ${err.message}`), ended(channel, 127, null)));
      send = (signal) => {
        if (child.exitCode === null && child.pid) process.kill(-child.pid, signal);
      };
      // SIGHUP to its process group, and its pipes closed: a program that goes on gets EPIPE (or SIGPIPE) as it writes.
      hangUp = () => {
        deliver(send, 'HUP');
        for (const pipe of [child.stdin, child.stdout, child.stderr]) pipe.destroy();
      };
    };
    session.on('shell', (accept) => run(accept()));
    session.on('exec', (accept, reject, { command }) => run(accept(), command));
  });
});

listen(server);
