// Step 18, built on step 10: an Ink app (React in the terminal) for every session, in the client's own terminal.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import '../shared/channels/ink-environment.ts'; // first: Ink must not read the server's terminal as its clients'
import { PassThrough, Writable } from 'node:stream';
import { render } from 'ink';
import { createElement as h } from 'react';
import ssh2 from 'ssh2';
import type { PseudoTtyInfo, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { keyMayLogIn } from '../shared/login/key-login.ts';
import { beforeStop, listen } from '../shared/server/listen.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';
import { INPUT_WINDOW, pacedInput, pacedLayout } from '../shared/channels/paced-input.ts';
import { changedRows } from '../shared/channels/changed-rows.ts';
import { App } from './18-ink-app/app.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** The largest screen laid out, whatever size the client claims (a pty request may say 4,294,967,295 columns). */
const MAX_COLS = 400;
const MAX_ROWS = 200;

/**
 * One user's app, in their channel as in a terminal of its own: Ink writes to `stdout` and reads `stdin`, streams
 * of this channel alone, so each session has its own React tree and state. Returns its `resize`, `stop` and `gone`.
 */
function inkApp(channel: ServerChannel, user: string, terminal: PseudoTtyInfo) {
  const size = () => ({ cols: Math.min(terminal.cols || 80, MAX_COLS), rows: Math.min(terminal.rows || 24, MAX_ROWS) });
  // Ink's frames, as the rows that changed; none queued past 256 KiB, the screen drawn whole once it is read.
  let dropped = false;
  const rows = changedRows();
  const stdout = Object.assign(new Writable({
    write(chunk: Buffer, encoding, done) {
      if (channel.writable && channel.writableLength < 256 * 1024) channel.write(rows(chunk.toString()));
      else dropped = true;
      done();
    },
  }), { isTTY: true, columns: size().cols, rows: size().rows });
  channel.on('drain', () => dropped && app && ((dropped = false), pacedLayout(stdout, user, layout)));
  // The keys typed, to Ink, which asks for a raw terminal (ssh made this one raw already), a slice at a time.
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin, ref: () => stdin, unref: () => stdin });
  const colour = !/^(dumb|vt\d+)$/.test(terminal.term); // colour if the client's terminal has it: its TERM says
  const props = () => ({ user, ...size(), colour });
  // q or Ctrl-C (the app's own exit()), or the step stopping: the cursor shown and the normal screen back, then status 0.
  let goodbye = '';
  const leave = () => {
    if (!channel.writable) return;
    channel.write(`\x1b[?25h\x1b[?1049l${goodbye}`);
    channel.exit(0);
    channel.end();
  };
  // The alternate screen (as step 10), then the app, at its turn: a first layout takes milliseconds, and 30 sessions
  // opened at once take turns, as resizes do. (Cast: Ink's types ask for a process's own stdout and stdin.)
  channel.write('\x1b[?1049h');
  let app: ReturnType<typeof render> | undefined;
  pacedLayout(stdout, user, () => {
    pacedInput(channel, stdin, user); // until now, what is typed waits in the channel
    app = render(h(App, props()), {
      stdout: stdout as unknown as NodeJS.WriteStream, stdin: stdin as unknown as NodeJS.ReadStream,
      stderr: stdout as unknown as NodeJS.WriteStream, exitOnCtrlC: false, patchConsole: false,
    });
    void app.waitUntilExit().then(leave);
  });
  // The screen at the latest size: a storm of window-changes is laid out once a turn (50 ms), two users' a turn.
  const layout = () => {
    Object.assign(stdout, { columns: size().cols, rows: size().rows });
    app!.rerender(h(App, props()));
    stdout.emit('resize'); // Ink lays the screen out again, and draws it whole
  };
  return {
    resize: () => app && pacedLayout(stdout, user, layout),
    stop: () => ((goodbye = 'The server is stopping. Goodbye!\r\n'),
      app ? app.unmount() : (pacedLayout(stdout, user, undefined), leave())), // an app not drawn yet is simply not drawn
    // The channel is gone (the user left, or the connection dropped): the React tree goes, with all it holds.
    gone: () => {
      pacedLayout(stdout, user, undefined);
      stdout.destroy(); // first: Ink would draw a last frame for nobody (100 sessions of 400x200 closed took 7 s)
      app?.unmount();
      stdin.destroy();
    },
  };
}

/** Every session's app: when the step stops, each user gets their terminal back first. */
const apps = new Set<ReturnType<typeof inkApp>>();
beforeStop(() => apps.forEach((app) => app.stop()));

// Each channel's window is what its client may type ahead: enough for a paste to flow, not megabytes a session.
const server = new Server({ hostKeys: readHostKeys(), algorithms, channelWindow: INPUT_WINDOW }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      ctx.accept();
    } else if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) { // unsigned, accept() says "this key would do"
      user = ctx.username;
      ctx.accept();
    } else {
      ctx.reject(['publickey', 'password']); // the ways to log in that are left
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    // The terminal the client asked for, and the app drawn on it once the shell starts.
    let terminal: PseudoTtyInfo | undefined;
    let app: ReturnType<typeof inkApp> | undefined;
    session.on('pty', (accept, reject, info) => {
      terminal = info;
      accept?.();
    });
    // The client's window changed size: ssh sends this whenever you resize your terminal.
    session.on('window-change', (accept, reject, info) => {
      accept?.();
      if (!terminal) return;
      terminal.cols = info.cols;
      terminal.rows = info.rows;
      app?.resize();
    });
    // Without a terminal (ssh -T, or a command), there is nothing to draw on: one line, and status 1.
    const noTerminal = (channel: ServerChannel) => {
      channel.stderr.write('This app draws on a terminal, and none was requested: connect with ssh, without -T or a command.\n');
      channel.exit(1);
      channel.end();
    };
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      if (!terminal) return noTerminal(channel);
      apps.add(app = inkApp(channel, user, terminal));
      channel.once('close', () => (apps.delete(app!), app?.gone()));
    });
    session.on('exec', (acceptExec) => noTerminal(acceptExec()));
  });
});

listen(server);
