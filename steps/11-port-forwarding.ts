// Step 11, built on step 02: port forwarding. ssh -L, -D and -R carry TCP connections through the SSH connection.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import { createServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { allowedAddress, prohibit } from '../shared/channels/forwarding.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
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
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      ctx.accept();
    } else {
      ctx.reject(['password']); // the ways to log in that are left
    }
  });

  let closed = false;
  client.once('close', () => (closed = true));

  // ssh -L and ssh -D: the client asks us to connect to a host and port, and carry that connection in a channel.
  client.on('tcpip', async (accept, reject, { destIP, destPort }) => {
    const to = `${destIP}:${destPort}`;
    if (destPort === 0 || destPort > 65535) return prohibit(reject, `${destPort} is not a port`); // else connect() throws
    const address = await allowedAddress(destIP);
    if (!address) {
      log(info, `refused to forward to ${to}: not in FORWARD_TO`);
      return prohibit(reject, `${to} is not a destination this server forwards to`);
    }
    const socket = connect({ port: destPort, host: address, allowHalfOpen: true }); // TCP may be half-closed
    const failed = (err: Error) => {
      log(info, `cannot forward to ${to}: ${err.message}`);
      reject(); // ssh prints "connect failed"
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      const channel = closed ? undefined : accept();
      if (channel) join(channel, socket);
      else socket.destroy();
    });
  });

  // ssh -R: the client asks us to listen on a port, and to send each connection to it back through a channel.
  const listeners = new Map<number, TcpServer>();
  let forwards = 0; // counted as each is granted, not once it listens: requests can come many at once
  client.on('request', (accept, reject, name, { bindAddr, bindPort }) => {
    if (name === 'cancel-tcpip-forward') {
      const listener = listeners.get(bindPort);
      if (!listener) return reject?.();
      listener.close();
      listeners.delete(bindPort);
      forwards -= 1;
      return accept?.();
    }
    if (name !== 'tcpip-forward' || (bindPort > 0 && bindPort < 1024) || bindPort > 65535
      || forwards >= limits.maxRemoteForwards) {
      log(info, `refused ${name} on port ${bindPort}`);
      return reject?.();
    }
    forwards += 1;
    const listener = createServer({ allowHalfOpen: true }, (socket) => {
      client.forwardOut(bindAddr, port(), socket.remoteAddress ?? '', socket.remotePort ?? 0, (err, channel) => {
        if (err) socket.destroy();
        else join(channel, socket);
      });
    });
    const port = () => (listener.address() as { port: number }).port;
    // Loopback only, whatever address the client names (as sshd's GatewayPorts no): no one else can connect.
    listener.listen(bindPort, '127.0.0.1', () => {
      if (closed) return listener.close();
      listeners.set(port(), listener);
      log(info, `listening on 127.0.0.1:${port()} for ssh -R`);
      accept?.(port()); // with port 0, ssh prints the port chosen: "Allocated port N for remote forward"
    });
    listener.once('error', (err) => {
      forwards -= 1;
      log(info, `cannot listen on port ${bindPort} for ssh -R: ${err.message}`);
      reject?.();
    });
  });
  // No listener outlives the connection that asked for it.
  client.once('close', () => listeners.forEach((listener) => listener.close()));
});

listen(server);
