// Step 08's commands (step 08 teaches them, and keeps its own copy): for the steps after it that only need a few
// commands to run, step 09 first.
import type { ClientInfo, ServerChannel } from 'ssh2';
import { log } from '../core/log.ts';
import { splitWords } from './split-words.ts';

/** Where a command writes: `out` (its standard output) and `err` (its standard error), and its channel. */
interface Io {
  channel: ServerChannel;
  out: (text: string) => void;
  err: (text: string) => void;
}

/** A command writes what it has to say and returns (or resolves to) its exit status. */
type Command = (args: string[], io: Io, user: string) => number | Promise<number>;

/** The commands a client may run, and no others. */
const commands: Record<string, Command> = {
  echo: (args, io) => (io.out(`${args.join(' ')}\n`), 0),
  whoami: (args, io, user) => (io.out(`${user}\n`), 0),
  date: (args, io) => (io.out(`${new Date().toUTCString()}\n`), 0),
  // Copies standard input to standard output until the client sends EOF, no faster than the client reads.
  cat: (args, { channel }) => new Promise((resolve) => {
    channel.pipe(channel, { end: false });
    channel.once('end', () => resolve(0));
  }),
  exit: (args, io) => {
    if (args.length === 0) return 0;
    if (/^\d+$/.test(args[0]!)) return Number(args[0]) % 256;
    io.err(`exit: ${args[0]}: numeric argument required\n`);
    return 2;
  },
};

async function run(commandLine: string, io: Io, user: string): Promise<number> {
  const words = splitWords(commandLine);
  if ('error' in words) {
    io.err(`sh: ${words.error}\n`);
    return 2;
  }
  const [name, ...args] = words;
  if (name === undefined) return 0;
  // Only the table's own entries: `constructor` or `toString` must not find what every object inherits.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    io.err(`${name}: command not found\n`);
    return 127;
  }
  return command(args, io, user);
}

/**
 * Runs a command line of step 08's commands (echo, whoami, date, cat, exit) for `user` on the channel, then sends
 * its exit status and closes the channel, as step 08's 'exec' listener does. A command that fails ends its own
 * channel, with status 1 and a log line, and nothing else. With `terminal` (the session has a pty), what it writes
 * goes as a terminal would show it: every line ends with CR LF (else the next starts mid-row), and errors come
 * with the rest, as from sshd's pty.
 */
export async function runCommand(channel: ServerChannel, commandLine: string, user: string, info: ClientInfo,
  terminal = false): Promise<void> {
  const onTerminal = (text: string) => channel.write(text.replace(/\r?\n/g, '\r\n'));
  const io: Io = terminal
    ? { channel, out: onTerminal, err: onTerminal }
    : { channel, out: (text) => channel.write(text), err: (text) => channel.stderr.write(text) };
  const status = await run(commandLine, io, user).catch((err: Error) => {
    log(info, `exec ${JSON.stringify(commandLine)} failed: ${err.message}`);
    return 1;
  });
  channel.exit(status);
  channel.end();
}
