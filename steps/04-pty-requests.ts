// Step 04: the terminal request, accepted: the session says the terminal's name and size, then closes.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import ssh2 from 'ssh2';
import type { PseudoTtyInfo } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      ctx.accept();
    } else {
      ctx.reject(['password']); // the ways to log in that are left
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    let terminal: PseudoTtyInfo | undefined; // the terminal the client asked for, if any
    session.on('pty', (accept, reject, info) => {
      terminal = info;
      accept?.(); // undefined when the client wants no reply
    });
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      if (terminal) {
        channel.write(`Your terminal name is "${terminal.term}". `
          + `Your terminal is ${terminal.cols} columns wide and ${terminal.rows} rows tall.\r\n`);
      } else {
        channel.write('No terminal was requested, so there is no name or size to show.\r\n');
      }
      channel.end(); // this channel (end of output, then close), not the connection
    });
  });
});

listen(server);
