// Step 08's commands (steps 08 to 10 teach them, and keep their own copy): for the steps after them that only
// need a few commands to run, step 15 first.
import type { ClientInfo, ServerChannel } from 'ssh2';
import { log } from './log.ts';
import { splitWords } from './split-words.ts';

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

/**
 * Runs a command line of step 08's commands (echo, whoami, date, cat, exit) for `user` on the channel, then sends
 * its exit status and closes the channel, as step 08's 'exec' listener does. A command that fails ends its own
 * channel, with status 1 and a log line, and nothing else.
 */
export async function runCommand(channel: ServerChannel, commandLine: string, user: string, info: ClientInfo): Promise<void> {
  const status = await run(commandLine, channel, user).catch((err: Error) => {
    log(info, `exec ${JSON.stringify(commandLine)} failed: ${err.message}`);
    return 1;
  });
  channel.exit(status);
  channel.end();
}
