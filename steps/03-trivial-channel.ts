// Step 03: a session channel that says one line and closes.
// The lesson: steps/03-trivial-channel.md
//
// Run it:   npx tsx steps/03-trivial-channel.ts
// Connect:  ssh -p 2022 alice@localhost            (password: wonderland)
// You see:  PTY allocation request failed on channel 0
//           This session is very simple. Goodbye!
//           Connection to localhost closed.
import ssh2 from 'ssh2';
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
    // No 'pty' listener: ssh2 turns the terminal request down, and OpenSSH says so.
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      channel.write('This session is very simple. Goodbye!\r\n');
      // Close this channel (end of output, then close), not the whole connection.
      channel.end();
    });
  });
});

listen(server);
