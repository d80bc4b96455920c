// Step 10: a full-screen box the size of your terminal that follows every resize; q leaves.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import ssh2 from 'ssh2';
import type { ClientInfo, PseudoTtyInfo, PublicKeyAuthContext, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { authorizedKeys } from '../shared/login/authorized-keys.ts';
import { fingerprint } from '../shared/core/fingerprint.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';
import { drawScreen } from '../shared/channels/screen.ts';
import { splitWords } from '../shared/channels/split-words.ts';

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

/** A command writes to the channel and returns (or resolves to) its exit status. */
type Command = (args: string[], channel: ServerChannel, user: string) => number | Promise<number>;

/** The commands a client may run, and no others. */
const commands: Record<string, Command> = {
  echo: (args, channel) => (channel.write(`${args.join(' ')}\n`), 0),
  whoami: (args, channel, user) => (channel.write(`${user}\n`), 0),
  date: (args, channel) => (channel.write(`${new Date().toUTCString()}\n`), 0),
  // Copies standard input to standard output until the client sends EOF, no faster than the client reads.
  cat: (args, channel) => new Promise((resolve) => {
    channel.pipe(channel, { end: false });
    channel.once('end', () => resolve(0));
  }),
  exit: (args, channel) => {
    if (args.length === 0) return 0;
    if (/^\d+$/.test(args[0]!)) return Number(args[0]) % 256;
    channel.stderr.write(`exit: ${args[0]}: numeric argument required\n`);
    return 2;
  },
};

async function run(commandLine: string, channel: ServerChannel, user: string): Promise<number> {
  const words = splitWords(commandLine);
  if ('error' in words) {
    channel.stderr.write(`sh: ${words.error}\n`);
    return 2;
  }
  const [name, ...args] = words;
  if (name === undefined) return 0;
  // Only the table's own entries: `constructor` or `toString` must not find what every object inherits.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    channel.stderr.write(`${name}: command not found\n`);
    return 127;
  }
  return command(args, channel, user);
}

/** Whether the key is listed for the user and, once signed, whether the signature holds; logs why it is not. */
function keyMayLogIn(ctx: PublicKeyAuthContext, info: ClientInfo): boolean {
  const refuse = (why: string) => {
    log(info, `key ${fingerprint(ctx.key.data)} refused for ${ctx.username}: ${why}`);
    return false;
  };
  const listed = authorizedKeys(ctx.username);
  const key = listed.find((each) => each.getPublicSSH().equals(ctx.key.data));
  if (!key) return refuse(listed.length ? 'not in the user\'s authorized_keys' : 'the user has no authorized_keys');
  // RSA must sign with SHA-2, as OpenSSH 8.8+ insists: the listed key's type decides, not what the client claims.
  if (key.type === 'ssh-rsa' && ctx.hashAlgo !== 'sha256' && ctx.hashAlgo !== 'sha512') {
    return refuse('an RSA signature with SHA-1');
  }
  if (!ctx.signature || !ctx.blob) return true; // first round: the client asks whether this key would do
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true || refuse('the signature does not hold');
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
    session.on('exec', async (acceptExec, reject, { command }) => {
      const channel = acceptExec();
      // A command that fails ends its own channel, with status 1 and a log line, and nothing else.
      const status = await run(command, channel, user).catch((err: Error) => {
        log(info, `exec ${JSON.stringify(command)} failed: ${err.message}`);
        return 1;
      });
      // The exit status goes first, then the channel closes: `ssh` exits with that status.
      channel.exit(status);
      channel.end();
    });
  });
});

listen(server);
