// Step 07: protocols, or what a session does kept apart from the channel it runs on.
// The lesson: steps/07-protocols.md
//
// Run it:   npx tsx steps/07-protocols.ts
// Connect:  ssh -p 2022 alice@localhost            (password: wonderland)
// You see:  Echo protocol connected
//           then each key you type, echoed back. Leave with Enter, then ~.
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import { algorithms } from '../shared/algorithms.ts';
import { readHostKeys } from '../shared/host-keys.ts';
import { listen } from '../shared/listen.ts';
import { log } from '../shared/log.ts';
import { readPasswordFile } from '../shared/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** The echo protocol: greets, sends back every byte it receives, and finishes when the input does. */
function echoProtocol(stream: Duplex): void {
  stream.write('Echo protocol connected\r\n');
  // pipe() writes back what it reads, reads no faster than the other side takes the echo, and ends with the input.
  stream.pipe(stream);
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password)) {
      ctx.accept();
    } else {
      // Tell the client which ways to log in are left: only 'password'.
      ctx.reject(['password']);
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
  });
});

listen(server);
