// Step 02: logging in with a password, and then nothing to do.
// The lesson: steps/02-password-auth.md
//
// Run it:   npx tsx steps/02-password-auth.ts
// Connect:  ssh -p 2022 alice@localhost            (password: wonderland)
// You see:  channel 0: open failed: administratively prohibited:
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
});

listen(server);
