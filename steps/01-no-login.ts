// Step 01: no 'authentication' listener, so nobody can log in: ssh says "Permission denied ()".
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import ssh2 from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';

const { Server } = ssh2;

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client) => {
});

listen(server);
