// Step 04: accepting the client's request for a terminal.
// The lesson: steps/04-pty-requests.md
//
// Run it:   npx tsx steps/04-pty-requests.ts
// Connect:  ssh -p 2022 alice@localhost            (password: wonderland)
// You see:  Your terminal name is "xterm-256color". Your terminal is 100 columns wide and 30 rows tall.
//           Connection to localhost closed.
// With `ssh -T` (no terminal), the step says that no terminal was requested.
import ssh2 from 'ssh2';
import type { PseudoTtyInfo } from 'ssh2';
import { algorithms } from '../shared/algorithms.ts';
import { readHostKeys } from '../shared/host-keys.ts';
import { listen } from '../shared/listen.ts';
import { readPasswordFile } from '../shared/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client) => {
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
      // Close this channel (end of output, then close), not the whole connection.
      channel.end();
    });
  });
});

listen(server);
