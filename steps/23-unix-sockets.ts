// Step 23, built on step 02: Unix-domain sockets forwarded, as step 11 forwards ports: ssh -L 8080:PATH, ssh -R PATH:...
// Run: npx tsx <this file>   Connect: ssh -N -R ./app.sock:localhost:8000 -p 2022 alice@localhost   Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import { chmodSync } from 'node:fs';
import { createServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { prohibit } from '../shared/channels/forwarding.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { socketPathClosed, socketToListenOn, socketToReach, takeSocketPath } from '../shared/channels/unix-sockets.ts';
import { log } from '../shared/core/log.ts';
import { limits } from '../shared/core/options.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** Carries bytes both ways, each side no faster than the other reads; the end of one side is passed on to the other. */
function join(channel: ServerChannel, socket: Socket): void {
  channel.pipe(socket);
  socket.pipe(channel, { end: false }); // its end is an EOF, after what came before it: ssh2's end() would close too
  socket.once('end', () => channel.write('', () => channel.eof()));
  socket.on('error', () => channel.destroy());
  socket.once('close', () => channel.resume()); // what comes after has nowhere to go: dropped, so the channel ends
  channel.once('close', () => socket.end(() => socket.destroy())); // what it was given still goes out first
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      ctx.accept();
    } else {
      ctx.reject(['password']); // the ways to log in that are left
    }
  });

  let closed = false;
  client.once('close', () => (closed = true));

  // ssh -L 8080:/path/app.sock: the client asks for a channel to a Unix-domain socket on our side; we connect to it,
  // if it is one of the user's own or one that FORWARD_TO_SOCKETS names (shared/), and carry the bytes both ways.
  client.on('openssh.streamlocal', (accept, reject, { socketPath }) => {
    const path = socketToReach(user, socketPath);
    if (!path) {
      log(info, `refused to forward to ${socketPath}: not ${user}'s, nor in FORWARD_TO_SOCKETS`);
      return prohibit(reject, `${socketPath} is not a socket this server forwards to`);
    }
    const socket = connect({ path, allowHalfOpen: true }); // half-closed, as a socket may be
    socket.once('error', (err) => (log(info, `cannot forward to ${path}: ${err.message}`), reject()));
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      const channel = closed ? undefined : accept();
      if (channel) join(channel, socket);
      else socket.destroy();
    });
  });

  // ssh -R ./app.sock:localhost:8000: the client asks us to listen on a socket, and to send each connection to it
  // back through a channel. Only in the user's own folder (shared/), as step 11 listens on loopback alone.
  const sockets = new Map<string, TcpServer>(); // by the path as the client asked for it
  let forwards = 0; // counted as each is granted, not once it listens: requests can come many at once
  client.on('request', async (accept, reject, name: string, { socketPath }: { socketPath: string }) => {
    if (name === 'cancel-streamlocal-forward@openssh.com') {
      const listener = sockets.get(socketPath);
      if (!listener) return reject?.();
      listener.close(); // and the socket's file is removed
      sockets.delete(socketPath);
      forwards -= 1;
      return accept?.();
    }
    if (name !== 'streamlocal-forward@openssh.com') return reject?.(); // ports: step 11
    const where = socketToListenOn(user, socketPath);
    if ('refused' in where || forwards >= limits.maxRemoteForwards) {
      log(info, `refused ${name} of ${socketPath}: ${'refused' in where ? where.refused : 'MAX_REMOTE_FORWARDS reached'}`);
      return reject?.();
    }
    forwards += 1;
    const path = where.path;
    // A socket file there already: removed if a step that was killed left it, refused if something answers on it.
    const busy = await takeSocketPath(path);
    if (busy) {
      forwards -= 1;
      log(info, `cannot listen on ${path} for ssh -R: ${busy}`);
      return reject?.();
    }
    const listener = createServer({ allowHalfOpen: true }, (socket) => {
      client.openssh_forwardOutStreamLocal(socketPath, (err, channel) => {
        if (err) socket.destroy();
        else join(channel, socket);
      });
    });
    listener.once('close', () => socketPathClosed(path)); // its file is removed: the path is free again
    listener.listen(path, () => {
      if (closed) return listener.close();
      chmodSync(path, 0o600); // the server's own system user alone may connect, as sshd's StreamLocalBindMask
      sockets.set(socketPath, listener);
      log(info, `listening on ${path} for ssh -R`);
      accept?.();
    });
    listener.once('error', (err) => {
      forwards -= 1;
      socketPathClosed(path);
      log(info, `cannot listen on ${path} for ssh -R: ${err.message}`);
      reject?.();
    });
  });
  // No listener outlives the connection that asked for it.
  client.once('close', () => sockets.forEach((listener) => listener.close()));
});

listen(server);
