// Step 22, built on step 11: a tunnel service. ssh -R NAME:80:localhost:3000 puts your local app on the web, at a name.
// Run: npx tsx <this file>   Connect: ssh -R alice-app:80:localhost:3000 -p 2022 alice@localhost   Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { allowedAddress, joinChannels, prohibit } from '../shared/channels/forwarding.ts';
import { allowed, domain, serveHttpFront } from '../shared/channels/http-front.ts';
import { notices } from '../shared/channels/notices.ts';
import { asked, claim, mayReach, owned } from '../shared/channels/tunnel-names.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { keyMayLogIn } from '../shared/login/key-login.ts';
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

/** One `ssh -R NAME:PORT:...`: the connection that asked, its user, the address and port it asked with, a password. */
interface Tunnel { client: Connection; user: string; bindAddr: string; bindPort: number; credentials?: string }
/** Each name's tunnels (NAME on the web, NAME:PORT an alias), taken in turn: an owner's connections share them. */
const tunnels = new Map<string, { list: Tunnel[]; next: number }>();
let httpPort = 0; // the front's, once it listens
const address = (name: string) => `http://${name}.${domain}:${httpPort}/`;

// A request's Host names its tunnel; a channel back through that tunnel's connection reaches the owner's app.
serveHttpFront((name, authorization) => {
  const found = tunnels.get(name);
  if (!found) return owned(name) ? 'gone' : undefined; // 502, or 404
  // A password set on any of the name's tunnels is asked of every request for it (401: a browser asks for them).
  if (!found.list.every((each) => allowed(each.credentials, authorization))) return 'password';
  const tunnel = found.list[found.next++ % found.list.length]!;
  return { owner: tunnel.user, open: (from) => new Promise((resolve, reject) => tunnel.client.forwardOut(tunnel.bindAddr,
    tunnel.bindPort, from.address, from.port, (err, channel) => (err ? reject(err) : resolve(channel)))) };
}, (port) => ((httpPort = port), console.log(`tunnels: http://NAME.${domain}:${port}/`)));

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      ctx.accept();
    } else if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) { // unsigned, accept() says "this key would do"
      user = ctx.username;
      ctx.accept();
    } else {
      ctx.reject(['publickey', 'password']); // the ways to log in that are left
    }
  });

  let closed = false;
  client.once('close', () => (closed = true));

  // What the user is told about their tunnels: in their session (ssh without -N), once it opens (shared/).
  const tell = notices(client);

  // ssh -L and ssh -D, as in step 11; and ssh -L 5432:NAME:5432 to an alias, for its owner and those they let.
  client.on('tcpip', async (accept, reject, { destIP, destPort }) => {
    const to = `${destIP}:${destPort}`;
    const alias = tunnels.get(to.toLowerCase())?.list.find((each) => mayReach(user, destIP.toLowerCase(), each.user));
    if (alias) {
      return alias.client.forwardOut(alias.bindAddr, alias.bindPort, info.ip ?? '', info.port ?? 0, (err, far) => {
        const near = err || closed ? undefined : accept();
        if (near) joinChannels(near, far); // the two users' channels, end to end (shared/)
        else err ? reject() : far.close();
      });
    }
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

  // ssh -R NAME:80:localhost:3000: no port is listened on; the name is bound, and the HTTP front sends its requests.
  const mine = new Map<string, string>(); // each forward's name, by the address and port it was asked with
  const unbind = (forward: string) => {
    const name = mine.get(forward)!;
    const found = tunnels.get(name)!;
    found.list = found.list.filter((each) => each.client !== client);
    if (found.list.length === 0) tunnels.delete(name);
    mine.delete(forward);
  };
  client.on('request', (accept, reject, kind, { bindAddr, bindPort }) => {
    const forward = `${bindAddr}:${bindPort}`;
    if (kind === 'cancel-tcpip-forward') return mine.has(forward) ? (unbind(forward), accept?.()) : reject?.();
    const wanted = kind === 'tcpip-forward' ? asked(bindAddr, (each) => tunnels.has(each)) : undefined;
    const name = wanted?.name ?? '';
    // Port 80 is the web's; any other is an alias, NAME:PORT, reached by logged-in users alone (ssh -L). A name in use
    // by another user's tunnel (a made-up one, which no one owns) is theirs for as long as it is.
    const key = bindPort === 80 ? name : `${name}:${bindPort}`;
    const refused = kind !== 'tcpip-forward' ? 'not a forward' : !wanted ? 'that is not a name (a-z, 0-9, -)'
      : bindPort < 1 || bindPort > 65535 ? `${bindPort} is not a port`
        : [...tunnels].some(([each, { list }]) => each.split(':')[0] === name && list.some((one) => one.user !== user))
          ? `the name ${name} is in use by another user`
          : mine.has(forward) || [...mine.values()].includes(key) ? `${key} is bound already`
            : mine.size >= limits.maxRemoteForwards ? 'MAX_REMOTE_FORWARDS reached' : claim(name, user, wanted.generated);
    if (refused) {
      log(info, `refused ${kind} of ${JSON.stringify(name)}:${bindPort}: ${refused}`);
      tell(`tunnels: ${refused}`);
      return reject?.();
    }
    mine.set(forward, key);
    const found = tunnels.get(key) ?? tunnels.set(key, { list: [], next: 0 }).get(key)!;
    log(info, `${user} bound ${key} (${found.list.push({ client, user, bindAddr, bindPort, credentials: wanted!.credentials })})`);
    tell(bindPort === 80 ? `Your app is at ${address(name)}` : `Reach it with ssh -L ${bindPort}:${key} (TUNNEL_ACCESS says who else may)`);
    accept?.();
  });
  // No name outlives the connection that bound it.
  client.once('close', () => [...mine.keys()].forEach(unbind));
});

listen(server);
