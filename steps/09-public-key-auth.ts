// Step 09: logging in with a key instead of a password (the lesson makes the key): no password prompt.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ClientInfo, PublicKeyAuthContext } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { authorizedKeys } from '../shared/login/authorized-keys.ts';
import { runCommand } from '../shared/channels/commands.ts';
import { fingerprint } from '../shared/core/fingerprint.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** The echo protocol: greets, sends back every byte it receives, and finishes when the input does. */
function echoProtocol(stream: Duplex): void {
  stream.write('Echo protocol connected\r\n');
  stream.pipe(stream); // reads no faster than the echo is taken, and ends when the input does
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
    session.on('pty', (accept) => {
      accept?.(); // undefined when the client wants no reply
    });
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      let eofReceived = false;
      session.on('eof', () => {
        eofReceived = true;
      });
      channel.on('close', () => {
        if (!eofReceived) log(info, 'channel closed without EOF');
      });
      echoProtocol(channel); // everything else the session does is the protocol's business
    });
    // Step 08's commands, from shared/channels/commands.ts: they end the channel with their exit status.
    session.on('exec', (acceptExec, reject, { command }) => runCommand(acceptExec(), command, user, info));
  });
});

listen(server);
