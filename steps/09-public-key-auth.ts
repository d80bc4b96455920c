// Step 09: logging in with a key instead of a password.
// The lesson: steps/09-public-key-auth.md
//
// Run it:   npx tsx steps/09-public-key-auth.ts
//           ssh-keygen -t ed25519 -N '' -f ~/.ssh/conch-steps-demo     (a key for the tutorial alone)
//           cp ~/.ssh/conch-steps-demo.pub keys/authorized_keys/alice
// Connect:  ssh -p 2022 -i ~/.ssh/conch-steps-demo alice@localhost whoami
// You see:  alice                        (and no password prompt)
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ClientInfo, PublicKeyAuthContext, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/algorithms.ts';
import { authorizedKeys, fingerprint } from '../shared/authorized-keys.ts';
import { readHostKeys } from '../shared/host-keys.ts';
import { listen } from '../shared/listen.ts';
import { log } from '../shared/log.ts';
import { readPasswordFile } from '../shared/passwords.ts';
import { splitWords } from '../shared/split-words.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** The echo protocol: greets, sends back every byte it receives, and finishes when the input does. */
function echoProtocol(stream: Duplex): void {
  stream.write('Echo protocol connected\r\n');
  // pipe() writes back what it reads, reads no faster than the other side takes the echo, and ends with the input.
  stream.pipe(stream);
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

/**
 * Whether the offered key is listed for the user and, once the client has signed, whether the signature holds.
 * A key refused is logged with the reason, which the client is never told.
 */
function keyMayLogIn(ctx: PublicKeyAuthContext, info: ClientInfo): boolean {
  const refuse = (why: string) => {
    log(info, `key ${fingerprint(ctx.key.data)} refused for ${ctx.username}: ${why}`);
    return false;
  };
  const listed = authorizedKeys(ctx.username);
  const key = listed.find((each) => each.getPublicSSH().equals(ctx.key.data));
  if (!key) return refuse(listed.length ? 'not in the user\'s authorized_keys' : 'the user has no authorized_keys');
  // An RSA key must sign with SHA-2: SHA-1 is refused, as OpenSSH has since 8.8. Decided by the listed key's type,
  // not by the algorithm name the client claims (ssh2 names a hash only for rsa-sha2-256 and rsa-sha2-512).
  if (key.type === 'ssh-rsa' && ctx.hashAlgo !== 'sha256' && ctx.hashAlgo !== 'sha512') {
    return refuse('an RSA signature with SHA-1');
  }
  // First round: the client only asks whether this key would do.
  if (!ctx.signature || !ctx.blob) return true;
  // Second round: the signature over this session proves the client holds the private key.
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true || refuse('the signature does not hold');
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password)) {
      user = ctx.username;
      ctx.accept();
    } else if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) {
      // Without a signature, accept() only answers "this key would do"; with one, it logs the user in.
      user = ctx.username;
      ctx.accept();
    } else {
      // Tell the client which ways to log in are left.
      ctx.reject(['publickey', 'password']);
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    session.on('pty', (accept) => {
      // Accept the terminal (ssh2 gives no accept function when the client wants no reply).
      accept?.();
    });
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      // ssh2 reports the client's EOF on the session as soon as it arrives. The channel's 'end' comes after
      // the last chunk of input has been read, but also when the channel closes without an EOF.
      let eofReceived = false;
      session.on('eof', () => {
        eofReceived = true;
      });
      channel.on('close', () => {
        if (!eofReceived) log(info, 'channel closed without EOF');
      });
      // Everything else the session does is the protocol's business.
      echoProtocol(channel);
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
