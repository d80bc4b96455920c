// Step 17, built on step 07: every core. Workers share the port; the primary replaces them, one at a time on SIGHUP.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
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
  });
});

/** How many worker processes serve: `WORKERS`, else one for each core. */
const workers = Number(process.env.WORKERS) || availableParallelism();

/** The primary serves no one: it starts the workers, replaces one that dies, and all of them on SIGHUP. */
function supervise(): void {
  let stopping = false;
  const retiring = new Set<Worker>(); // replaced, or being replaced: not to be replaced again when they end
  const start = (): Worker => {
    const worker = cluster.fork();
    let listening = false;
    worker.once('listening', () => (listening = true));
    // A worker that is leaving asks whether a connection is still on its way to it (shared/server/listen.ts): by
    // now the primary hands it none, and this answer comes after any it handed before.
    worker.on('message', (message) => message === 'handed over?' && worker.send('all handed over'));
    // A message to a worker that has just ended fails: unheard, that 'error' would end the primary, and every worker.
    worker.on('error', (err) => console.log(`worker ${worker.process.pid}: ${err.message}`));
    worker.once('exit', (code, signal) => {
      if (stopping || retiring.delete(worker)) return;
      if (!listening) process.exit(1); // it could not even start (it said why), and would only fail again
      console.log(`worker ${worker.process.pid} ended (${signal ?? `status ${code}`}): starting another`);
      start();
    });
    return worker;
  };
  // The workers there are, less one that has just ended (Node lists it until its channel closes too).
  const running = () => Object.values(cluster.workers ?? {}).filter((worker) => worker !== undefined)
    .filter((worker) => !worker.isDead());
  console.log(`primary ${process.pid}: ${workers} worker(s); kill -HUP ${process.pid} replaces them one at a time`);
  // One first: if it cannot listen (the port is taken), it says so once, and the step stops.
  start().once('listening', () => {
    for (let i = 1; i < workers && !stopping; i++) start();
  });

  // One restart at a time: a SIGHUP during one (a second deploy, say) starts another once it has ended.
  let restarts = Promise.resolve();
  process.on('SIGHUP', () => {
    restarts = restarts.then(async () => {
      console.log(`SIGHUP: replacing ${workers} worker(s), one at a time`);
      for (const old of running().filter((worker) => !retiring.has(worker))) {
        if (stopping) return;
        if (old.isDead()) continue; // it ended during the restart, and was replaced then
        retiring.add(old); // from now on: should it end before the new one listens, that one replaces it
        await once(start(), 'listening');
        // It takes no one new, and serves its sessions until they end (shared/server/listen.ts).
        if (old.isConnected()) old.send('retire');
      }
    });
  });
  const stop = (signal: NodeJS.Signals) => {
    stopping = true;
    console.log(`${signal}: stopping ${running().length} worker(s)`);
    for (const worker of running()) worker.process.kill(signal);
    cluster.on('exit', () => running().length === 0 && process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// The primary read (or made) the host keys above before any worker: every worker serves the same ones.
if (cluster.isPrimary) supervise();
else listen(server);
