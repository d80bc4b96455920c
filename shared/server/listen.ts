// Listening for connections, and what every connection needs that no step is about.
import cluster from 'node:cluster';
import { createServer, isIP, type Socket } from 'node:net';
import type { Server } from 'ssh2';
import { explain, fail } from '../core/errors.ts';
import { admit } from './admission.ts';
import { limitChannels, setKeepalive, watchLogins } from './limits.ts';
import { address, log } from '../core/log.ts';
import { limits, options } from '../core/options.ts';
import { parseHeader, readHeader } from './proxy-protocol.ts';
import { keepYoungGenerationSmall } from './young-generation.ts';

/**
 * Listens on `--port`/`PORT` (default 2022) and `--host`/`HOST` (default 127.0.0.1), prints
 * `listening on HOST:PORT`, and hands each TCP connection to the SSH server. Every connection gets TCP_NODELAY,
 * an error listener (so nothing a client sends can crash the process), the limits of shared/server/admission.ts and limits.ts, and a
 * log line when it opens, logs in and closes. A connection from a load balancer listed in `PROXY_PROTOCOL_FROM`
 * must start with a PROXY header, and is then the client's, by the address the header gives, everywhere.
 * Ctrl-C closes the listener and every connection and exits with status 0; SIGTERM drains: it closes the
 * listener, gives the connections up to `DRAIN_TIMEOUT` seconds to finish (logging in, and what they do after),
 * then closes what is left and exits with status 0. A cluster worker sent the message `retire` (step 17's
 * rolling restart) drains the same way, for up to `RETIRE_TIMEOUT` seconds.
 */
export function listen(server: Server): void {
  keepYoungGenerationSmall();
  setKeepalive();
  server.on('connection', (client, info) => {
    // An 'error' nobody listens for would end the whole process: a reset socket or a bad packet must only
    // end this connection, which ssh2 does by itself once the error is reported.
    client.on('error', (err) => log(info, `error: ${err.message}`));
    // A step may listen on the connection once for each of its open sessions (step 20 does): MAX_SESSIONS of them
    // are no leak, and Node warns of one past ten listeners. Past these, it still warns.
    client.setMaxListeners(limits.maxSessions + 10);
    watchLogins(client, info);
    limitChannels(client, info);
  });
  catchTheRest();

  // We listen ourselves rather than with server.listen(): ssh2 reports a connection only once the client has
  // sent its SSH version line, and we want to log (and set up) every connection from its first byte.
  const sockets = new Set<Socket>();
  const listener = createServer((socket) => {
    // Reset before it reached us, it has no address left, and nothing to serve: HAProxy's `check` connects and
    // resets at once, every two seconds, and would be logged as `unknown:? connection opened` each time.
    if (socket.remoteAddress === undefined) return socket.destroy();
    if (!limits.proxyFrom?.has(socket.remoteAddress)) {
      return void serve(socket);
    }
    // From a load balancer: first its PROXY header, then SSH, from the client the header names.
    const balancer = { ip: socket.remoteAddress, port: socket.remotePort };
    void readHeader(socket, PROXY_HEADER_MS).then((origin) => {
      // The balancer checking that the step is there: no client's, so neither logged nor counted against it.
      if (origin === 'health check') return socket.destroy();
      if ('error' in origin) {
        log(balancer, `${origin.error} from a PROXY_PROTOCOL_FROM address: closing`);
        return socket.destroy();
      }
      Object.defineProperties(socket, {
        remoteAddress: { value: origin.ip },
        remotePort: { value: origin.port },
        remoteFamily: { value: isIP(origin.ip) === 6 ? 'IPv6' : 'IPv4' },
      });
      void serve(socket); // ssh2 reads on from there: what came after the header first
    });
  });

  /** Admits a connection (from the client it says it is) under the limits, logs it, and hands it to ssh2. */
  async function serve(socket: Socket): Promise<void> {
    const peer = { ip: socket.remoteAddress, port: socket.remotePort };
    // A connection refused by the limits gets one log line at most (see shared/server/admission.ts), and nothing more.
    if (!(await admit(socket))) return;
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add about 90 ms to every session on loopback.
    socket.setNoDelay(true);
    log(peer, 'connection opened');
    socket.on('close', () => {
      sockets.delete(socket);
      // Once ssh2 has closed this connection's channels, whose own last lines (step 06's) then come first.
      setImmediate(() => {
        log(peer, 'connection closed');
        if (sockets.size === 0) lastClosed?.();
        if (draining && handedAll && sockets.size === 0 && !stopping) process.exit(0);
      });
    });
    sockets.add(socket);
    // When the server has finished its side (after a disconnect), a client that never closes its own side
    // (frozen, or hostile) would keep the connection forever: it gets two seconds. A connection that closes sooner
    // (nearly all) takes its timer with it: left to fire, each one would wake the process once more for nothing.
    socket.once('finish', () => {
      const timer = setTimeout(() => socket.destroy(), 2000).unref();
      socket.once('close', () => clearTimeout(timer));
    });
    server.injectSocket(socket);
    // ssh2 holds the socket until it is ready to read; this listener then sees each chunk before ssh2 does.
    socket.once('data', (first: Buffer) => {
      const header = parseHeader(first);
      if (header && 'error' in header && header.error === 'not a PROXY header') return;
      log(peer, 'a PROXY header from an address not in PROXY_PROTOCOL_FROM: closing');
      socket.destroy();
    });
  }

  listener.on('error', (err: NodeJS.ErrnoException) => {
    // Once listening, an error (such as running out of file descriptors) loses one connection, not the server.
    if (listener.listening) {
      if (err.code === 'EMFILE' || err.code === 'ENFILE') {
        return console.log(`cannot accept a connection: out of file descriptors with ${sockets.size} open `
          + '(raise the limit with ulimit -n, or lower MAX_CONNECTIONS)');
      }
      return console.log(`listener error: ${err.message}`);
    }
    const where = address(options.host, options.port);
    if (err.code === 'EADDRINUSE') fail(`cannot listen on ${where}: the port is in use (choose another with --port)`);
    if (err.code === 'EADDRNOTAVAIL') fail(`cannot listen on ${where}: this machine has no such address`);
    if (err.code === 'EACCES') fail(`cannot listen on ${where}: permission denied (ports below 1024 need root)`);
    fail(`cannot listen on ${where}: ${explain(err)}`);
  });
  listener.listen(options.port, options.host, () => {
    const bound = listener.address();
    const port = typeof bound === 'object' && bound ? bound.port : options.port;
    console.log(`listening on ${address(options.host, port)}`);
  });

  const stop = (signal: string) => {
    console.log(`${signal}: closing the listener and ${sockets.size} connection(s)`);
    listener.close();
    const end = () => {
      for (const socket of sockets) socket.destroy();
      process.exit(0);
    };
    if (goodbyes.length === 0 || sockets.size === 0) return end();
    // What the step says to its clients first (step 18 gives their terminals back): the process ends once it is
    // said and they have hung up, or after a second.
    stopping = true;
    // (Each in a promise of its own: one that throws is only a goodbye not said, never a crash.)
    const said = Promise.allSettled(goodbyes.splice(0).map((goodbye) => Promise.resolve().then(goodbye)));
    const hungUp = new Promise<void>((resolve) => (lastClosed = resolve));
    const second = new Promise((resolve) => setTimeout(resolve, GOODBYE_MS).unref());
    void Promise.race([Promise.all([said, hungUp]), second]).then(end);
  };
  let stopping = false;
  let lastClosed: (() => void) | undefined;
  let draining = false;
  let handedAll = false; // no connection can still be on its way to this process
  // Closes the listener, and ends the process when its last connection closes, or after `seconds` (`bound`).
  const drain = (why: string, seconds: number, bound: string) => {
    if (seconds === 0) return stop(why);
    listener.close();
    const wait = () => {
      draining = true;
      console.log(`${why}: closing the listener; ${sockets.size} connection(s) get up to ${seconds} s to finish (${bound})`);
      setTimeout(() => stop(bound), seconds * 1000).unref();
    };
    if (sockets.size > 0) wait();
    afterHandovers(() => {
      handedAll = true;
      if (sockets.size > 0) {
        if (!draining) wait(); // a connection came while the primary answered: it gets the same time
      } else if (draining) {
        process.exit(0); // the connections there were at the close ended before the answer came
      } else {
        stop(why);
      }
    });
  };
  // Kept, not once: a listener left tells other libraries' handlers (Ink's) that the step ends itself. A second
  // Ctrl-C during the goodbyes' second ends it at once.
  let interrupted = false;
  process.on('SIGINT', () => (interrupted ? process.exit(0) : ((interrupted = true), stop('SIGINT'))));
  process.once('SIGTERM', () => drain('SIGTERM', limits.drainTimeout, 'DRAIN_TIMEOUT'));
  // A worker that step 17's primary replaces (a rolling restart): its sessions are people's work, not a stop.
  process.on('message', (message) => message === 'retire' && drain('retired', limits.retireTimeout, 'RETIRE_TIMEOUT'));
}

/**
 * Calls `done` once no connection can still be on its way to this process. A cluster's primary may have handed a
 * worker a connection just before the worker closed its listener; a worker that ended then would leave that
 * connection with nobody (Node's primary holds it, and the client waits until it gives up). So a worker asks its
 * primary `handed over?`, which step 17's primary answers `all handed over`: the primary reads the question after
 * the close, so it hands no more, and its answer comes after any connection it handed before. A primary that does
 * not answer in HANDOVER_MS, and a process that is no worker, need no more waiting.
 */
function afterHandovers(done: () => void): void {
  if (!cluster.isWorker || !process.send || !process.connected) return void setImmediate(done);
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    process.off('message', answered);
    clearTimeout(timer);
    done();
  };
  const answered = (message: unknown) => message === 'all handed over' && once();
  const timer = setTimeout(once, HANDOVER_MS);
  process.on('message', answered);
  process.send('handed over?');
}

/** What steps do for their clients as they stop, before the connections close (see beforeStop). */
const goodbyes: (() => unknown)[] = [];
/** How long what the goodbyes said has to reach the clients. */
const GOODBYE_MS = 1000;

/**
 * Registers `goodbye`, called as the step stops (Ctrl-C, or the end of a drain) while clients are still connected:
 * it may write to their channels and end them, and return a promise of what it still has to do. The process ends
 * once every goodbye is done and every client has hung up, or after a second. Step 18 gives each client's terminal
 * back; step 21's people leave the room, and the store is told before the process ends.
 */
export function beforeStop(goodbye: () => unknown): void {
  goodbyes.push(goodbye);
}

/** How long a draining worker waits for its primary's answer (see afterHandovers). */
const HANDOVER_MS = 10_000;

/** Seconds a load balancer has to send its PROXY header. */
const PROXY_HEADER_MS = 10_000;

/**
 * The last net under everything else: an exception or a rejected promise that nothing handled is logged, and the
 * step goes on serving its other clients, instead of ending. Nothing a client does should ever get this far; the
 * tests treat an `internal error` line as a failure.
 */
function catchTheRest(): void {
  if (process.listenerCount('uncaughtException') > 0) return;
  const report = (err: unknown) => {
    const text = err instanceof Error ? err.stack ?? err.message : String(err);
    console.log(`internal error (the step goes on serving): ${text.split('\n').slice(0, 3).join(' | ')}`);
  };
  process.on('uncaughtException', report);
  process.on('unhandledRejection', report);
}
