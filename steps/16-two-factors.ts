// Step 16, built on step 09: two factors, a listed key and then a code from an authenticator app (npm run totp).
// Run: npx tsx <this file>         Connect: ssh -p 2022 -i ~/.ssh/conch-steps-demo alice@localhost (then the code)
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
import { codeRefusal } from '../shared/login/totp.ts';

const { Server } = ssh2;

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
  let keyHolder: string | undefined; // who has passed the first factor (a listed key, signed); before, no name is
  client.on('authentication', (ctx) => {
    if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) {
      if (!ctx.signature) return ctx.accept(); // first round: "this key would do"
      keyHolder = ctx.username;
      return ctx.reject(['keyboard-interactive'], true); // partial success: right, and now the second factor
    }
    // The second factor, only after the first: keyboard-interactive lets the server ask what it likes.
    if (ctx.method === 'keyboard-interactive' && keyHolder === ctx.username) {
      return ctx.prompt([{ prompt: 'Verification code: ', echo: false }], (answers) => {
        const refused = codeRefusal(ctx.username, answers[0] ?? '');
        if (!refused) {
          user = ctx.username;
          return ctx.accept();
        }
        log(info, `code refused for ${ctx.username}: ${refused}`);
        ctx.reject(['keyboard-interactive']); // a failed login, as a wrong password is: MAX_AUTH_TRIES counts it
      });
    }
    ctx.reject([keyHolder === undefined ? 'publickey' : 'keyboard-interactive']); // what is left to do
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
