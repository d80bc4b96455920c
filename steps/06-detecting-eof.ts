// Step 06: noticing the end of the client's input.
// The lesson: steps/06-detecting-eof.md
//
// Run it:   npx tsx steps/06-detecting-eof.ts
// Connect:  printf 'hello\n' | ssh -T -p 2022 alice@localhost            (password: wonderland)
// You see:  No terminal was requested, so there is no name or size to show.
//           echo: 'hello\n'
//           eof received
import ssh2 from 'ssh2';
import type { PseudoTtyInfo } from 'ssh2';
import { algorithms } from '../shared/algorithms.ts';
import { readHostKeys } from '../shared/host-keys.ts';
import { listen } from '../shared/listen.ts';
import { log } from '../shared/log.ts';
import { readPasswordFile } from '../shared/passwords.ts';
import { showBytes } from '../shared/show-bytes.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

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
    // The terminal the client asked for, if it asked for one.
    let terminal: PseudoTtyInfo | undefined;
    session.on('pty', (accept, reject, info) => {
      terminal = info;
      // ssh2 gives no accept function when the client wants no reply.
      accept?.();
    });
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      if (terminal) {
        channel.write(`Your terminal name is "${terminal.term}". `
          + `Your terminal is ${terminal.cols} columns wide and ${terminal.rows} rows tall.\r\n`);
      } else {
        channel.write('No terminal was requested, so there is no name or size to show.\r\n');
      }
      // Keep the channel open, and answer each chunk of input as it arrives. A client that sends without reading
      // the answers would have them pile up here: when write() says so (false), read nothing until they have gone.
      channel.on('data', (data: Buffer) => {
        if (!channel.write(`echo: ${showBytes(data)}\r\n`)) {
          channel.pause();
          channel.once('drain', () => channel.resume());
        }
      });
      // ssh2 reports the client's EOF on the session as soon as it arrives. The channel's 'end' comes after
      // the last chunk of input has been read, but also when the channel closes without an EOF.
      let eofReceived = false;
      session.on('eof', () => {
        eofReceived = true;
      });
      channel.on('end', () => {
        if (!eofReceived) return;
        channel.write('eof received\r\n');
        channel.end();
      });
      channel.on('close', () => {
        if (!eofReceived) log(info, 'channel closed without EOF');
      });
    });
  });
});

listen(server);
