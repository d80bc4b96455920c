// Listening for connections, and what every connection needs that no step is about.
import { createServer, type Socket } from 'node:net';
import type { Server } from 'ssh2';
import { explain, fail } from './errors.ts';
import { admit, limitChannels, setKeepalive, watchLogins } from './limits.ts';
import { address, log } from './log.ts';
import { options } from './options.ts';

/**
 * Listens on `--port`/`PORT` (default 2022) and `--host`/`HOST` (default 127.0.0.1), prints
 * `listening on HOST:PORT`, and hands each TCP connection to the SSH server. Every connection gets TCP_NODELAY,
 * an error listener (so nothing a client sends can crash the process), the limits of shared/limits.ts, and a
 * log line when it opens, logs in and closes. Ctrl-C or SIGTERM closes the listener and exits with status 0.
 */
export function listen(server: Server): void {
  setKeepalive();
  server.on('connection', (client, info) => {
    // An 'error' nobody listens for would end the whole process: a reset socket or a bad packet must only
    // end this connection, which ssh2 does by itself once the error is reported.
    client.on('error', (err) => log(info, `error: ${err.message}`));
    watchLogins(client, info);
    limitChannels(client, info);
  });
  catchTheRest();

  // We listen ourselves rather than with server.listen(): ssh2 reports a connection only once the client has
  // sent its SSH version line, and we want to log (and set up) every connection from its first byte.
  const sockets = new Set<Socket>();
  const listener = createServer((socket) => {
    const peer = { ip: socket.remoteAddress, port: socket.remotePort };
    // A connection refused by the limits gets one log line at most (see shared/limits.ts), and nothing more.
    if (!admit(socket)) return;
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add about 90 ms to every session on loopback.
    socket.setNoDelay(true);
    log(peer, 'connection opened');
    socket.on('close', () => {
      sockets.delete(socket);
      // Once ssh2 has closed this connection's channels, whose own last lines (step 06's) then come first.
      setImmediate(() => log(peer, 'connection closed'));
    });
    sockets.add(socket);
    // When the server has finished its side (after a disconnect), a client that never closes its own side
    // (frozen, or hostile) would keep the connection forever: it gets two seconds.
    socket.once('finish', () => setTimeout(() => socket.destroy(), 2000).unref());
    server.injectSocket(socket);
  });

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
    for (const socket of sockets) socket.destroy();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

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
