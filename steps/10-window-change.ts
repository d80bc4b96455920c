// Step 10: a full-screen box the size of your terminal that follows every resize; q leaves.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import ssh2 from 'ssh2';
import type { PseudoTtyInfo, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { runCommand } from '../shared/channels/commands.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { keyMayLogIn } from '../shared/login/key-login.ts';
import { listen } from '../shared/server/listen.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';
import { drawScreen } from '../shared/channels/screen.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/**
 * The full-screen app: draws itself to fill the terminal (again at each `redraw`), and quits on q or Ctrl-C,
 * giving back the screen it found.
 */
function greeter(channel: ServerChannel, user: string, terminal: { cols: number; rows: number }) {
  let waiting = false;
  const draw = () => {
    // Once the app has quit, a late resize draws nothing: writing after end() would be an error.
    if (!channel.writable || waiting) return;
    // A client that is not reading yet gets one screen, the latest, when it catches up: not one per resize.
    if (channel.writableNeedDrain) {
      waiting = true;
      channel.once('drain', () => ((waiting = false), draw()));
      return;
    }
    channel.write(drawScreen(terminal.cols, terminal.rows, [
      `Hello, ${user}!`,
      `This terminal is ${terminal.cols} columns wide and ${terminal.rows} rows tall.`,
      '',
      'Resize the window, or press q to quit.',
    ]));
  };
  // Switch to the alternate screen (the one full-screen programs use) and hide the cursor.
  channel.write('\x1b[?1049h\x1b[?25l');
  draw();
  const onKey = (data: Buffer) => {
    if (!data.includes('q') && !data.includes(0x03)) return;
    channel.off('data', onKey);
    // Show the cursor again and go back to the normal screen, as it was before.
    channel.write('\x1b[?25h\x1b[?1049l');
    channel.exit(0);
    channel.end();
  };
  channel.on('data', onKey);
  return { redraw: draw };
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
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
    let app: ReturnType<typeof greeter> | undefined;
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
      app?.redraw();
    });
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      if (!terminal) {
        channel.stderr.write('This app draws on a terminal, and none was requested: connect with ssh -t.\n');
        channel.exit(1);
        channel.end();
        return;
      }
      app = greeter(channel, user, terminal);
    });
    // Step 08's commands, from shared/channels/commands.ts: they end the channel with their exit status.
    session.on('exec', (acceptExec, reject, { command }) => runCommand(acceptExec(), command, user, info));
  });
});

listen(server);
