// Step 01: an SSH server that nobody can log in to.
// The lesson: steps/01-no-login.md
//
// Run it:   npx tsx steps/01-no-login.ts
// Connect:  ssh -p 2022 alice@localhost
// You see:  three password prompts, each refused whatever you type, then
//           alice@localhost: Permission denied ().
import ssh2 from 'ssh2';
import { algorithms } from '../shared/algorithms.ts';
import { readHostKeys } from '../shared/host-keys.ts';
import { listen } from '../shared/listen.ts';

const { Server } = ssh2;

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client) => {
  // Nothing here yet. With no 'authentication' listener on the client, ssh2 turns down every way to log in.
});

listen(server);
