// Step 22's HTTP front: each request's Host names a tunnel, and the request goes through a channel of that tunnel's
// to the app on its owner's computer. Node's http reads both sides (never this file): keep-alive with the browser,
// bodies streamed both ways at the pace of the slower side, and an Upgrade (WebSockets) passed through as bytes.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, request, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { fail } from '../core/errors.ts';
import { limits } from '../core/options.ts';

/** A tunnel the front may send a request to: its owner, and how to open a channel to it for a request from `from`. */
export interface Found { owner: string; open: (from: { address: string; port: number }) => Promise<Duplex> }

/**
 * Finds a tunnel of `name` for a request that gave `authorization`: undefined when no one owns the name (404),
 * `'gone'` when its owner is not connected (502), `'password'` when it wants a user and password not given (401).
 */
export type Route = (name: string, authorization?: string) => Found | 'gone' | 'password' | undefined;

/** How long a tunnel may take to open its channel, and its app to begin its answer, in milliseconds. */
const OPEN_MS = 10_000;
const ANSWER_MS = 60_000;

/**
 * Whether a request's `Authorization` header gives `credentials` (`USER:PASSWORD`) by HTTP's Basic scheme; true
 * when there are none to give. Compared in constant time: how long it takes tells nothing of how much matched.
 */
export function allowed(credentials: string | undefined, authorization = ''): boolean {
  if (credentials === undefined) return true;
  const [, given = ''] = /^Basic ([A-Za-z0-9+/=]{0,400})$/i.exec(authorization) ?? [];
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(Buffer.from(given, 'base64').toString()), digest(credentials));
}

/** Where the front listens: `TUNNELS_HTTP`, HOST:PORT (default 127.0.0.1:8080; port 0 picks a free one). */
const [, host = '', portText = ''] = /^(\S+):(\d{1,5})$/.exec(process.env.TUNNELS_HTTP || '127.0.0.1:8080') ?? [];
if (!host || Number(portText) > 65535) fail(`TUNNELS_HTTP must be HOST:PORT, such as 127.0.0.1:8080, not "${process.env.TUNNELS_HTTP}"`);
/** The domain under which the names are: `TUNNELS_DOMAIN` (default `localhost`, which browsers and curl resolve). */
export const domain = (process.env.TUNNELS_DOMAIN || 'localhost').toLowerCase();

/** The tunnel name a Host header asks for: `Alice-App.localhost.:8080` is `alice-app`; undefined if none. */
export function nameIn(hostHeader: string | undefined): string | undefined {
  const hostName = (hostHeader ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  return hostName.endsWith(`.${domain}`) ? hostName.slice(0, -domain.length - 1) : undefined;
}

/** A short page that says what went wrong, in the front's own words: never the app's. */
function page(response: ServerResponse, status: number, text: string): void {
  if (response.headersSent) return void response.destroy();
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end(`${status}: ${text}\n`);
}

/** Headers about one connection, not the request (RFC 9110, 7.6.1): never passed on, either way, but for an Upgrade. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
/** Whether a header is about this connection alone: one of HOP_BY_HOP, or one its Connection header names. */
const hopByHop = (field: string, connection = '') => field.toLowerCase() !== 'host'
  && (HOP_BY_HOP.includes(field.toLowerCase()) || connection.toLowerCase().split(/\s*,\s*/).includes(field.toLowerCase()));

/** Headers that say who the client is: the front, the first to see it, says so, and a client's own are dropped. */
const WHO = ['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip'];

/** The request's headers as the app gets them: its own, and who asked, through what, for which host. */
function forwarded(incoming: IncomingMessage, upgrade = false): IncomingHttpHeaders {
  const headers = Object.fromEntries(Object.entries(incoming.headers).filter(([field]) => !WHO.includes(field)
    && (!hopByHop(field, incoming.headers.connection) || (upgrade && ['connection', 'upgrade'].includes(field)))));
  const from = incoming.socket.remoteAddress ?? '';
  headers['x-forwarded-for'] = from;
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-host'] = incoming.headers.host ?? '';
  return headers;
}

/**
 * Starts the front on `TUNNELS_HTTP`, sending each request to the channel `route` opens for its Host's name: 404
 * for a name no tunnel has, 502 when the tunnel cannot be reached. Calls `listening` with its port.
 */
export function serveHttpFront(route: Route, listening: (port: number) => void): void {
  // Headers must all come within 10 s (checked each second: slowloris), a request within 60 s; a connection kept
  // alive waits 5 s for its next request; at most TUNNELS_HTTP_MAX connections at once.
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 60_000, maxHeaderSize: 16 * 1024,
    connectionsCheckingInterval: 1000 });
  server.maxConnections = limits.tunnelsHttpMax;
  /** The requests each owner's tunnels serve now: at most TUNNEL_CONNECTIONS_MAX, so that no one user takes every connection. */
  const serving = new Map<string, number>();
  /**
   * Finds the tunnel for a request: a page's status and words when there is none to send it to, else the owner's
   * place taken (given back by `release`, once) and the channel opening (rejected when it cannot, in OPEN_MS).
   */
  const find = (incoming: IncomingMessage): { status: number; text: string; realm?: string }
    | { release: () => void; channel: Promise<Duplex> } => {
    const name = nameIn(incoming.headers.host);
    const found = name === undefined ? undefined : route(name, incoming.headers.authorization);
    if (!found) return { status: 404, text: `no tunnel is named ${name ?? 'by this host'}` };
    if (found === 'gone') return { status: 502, text: 'the tunnel cannot be reached now' };
    if (found === 'password') return { status: 401, text: 'this tunnel wants a user and password', realm: name };
    if ((serving.get(found.owner) ?? 0) >= limits.tunnelConnectionsMax) {
      return { status: 503, text: `${name}'s owner has as many connections as they may (TUNNEL_CONNECTIONS_MAX)` };
    }
    serving.set(found.owner, (serving.get(found.owner) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (serving.get(found.owner) === 1) serving.delete(found.owner);
      else serving.set(found.owner, serving.get(found.owner)! - 1);
    };
    const from = { address: incoming.socket.remoteAddress ?? '', port: incoming.socket.remotePort ?? 0 };
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((resolve, reject) => (timer = setTimeout(() => reject(new Error('no channel in time')), OPEN_MS)));
    const opening = found.open(from);
    void opening.then(discardIfLate(() => released), () => {}); // a channel that opens after it was given up on
    const channel = Promise.race([opening, late]).finally(() => clearTimeout(timer));
    return { release, channel };
  };
  /** Ends a channel the front is done with: its close, and whatever the app still sends, read and dropped. */
  const done = (channel: Duplex) => (channel.unpipe(), channel.removeAllListeners('data'), channel.resume(), channel.destroy());
  const discardIfLate = (gaveUp: () => boolean) => (channel: Duplex) => void (gaveUp() && done(channel));

  server.on('request', (incoming: IncomingMessage, response: ServerResponse) => {
    const found = find(incoming);
    if ('status' in found) {
      if (found.realm) response.setHeader('WWW-Authenticate', `Basic realm="${found.realm}", charset="UTF-8"`);
      return page(response, found.status, found.text);
    }
    response.once('close', found.release); // answered, or the browser gone: the owner's place back
    found.channel.then((channel) => {
      if (response.destroyed || response.writableFinished) return done(channel); // the browser left while it opened
      response.once('close', () => done(channel));
      // One channel a request, to the app through the owner's ssh; the browser's connection is kept alive here.
      const upstream = request({ method: incoming.method, path: incoming.url, headers: forwarded(incoming), createConnection: () => channel as Socket });
      const slow = setTimeout(() => (upstream.destroy(), page(response, 504, 'the tunnel\'s app did not answer in time')), ANSWER_MS);
      upstream.on('response', (answer) => {
        clearTimeout(slow);
        try {
          response.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders.flatMap((field, i, all) =>
            (i % 2 === 0 && !hopByHop(field, answer.headers.connection) ? [field, all[i + 1]!] : [])));
        } catch {
          return page(response, 502, 'the tunnel\'s app answered what is not HTTP'); // a status of 099, a control character
        }
        answer.pipe(response);
        answer.once('close', () => answer.complete || response.destroy()); // the tunnel went halfway: so does the answer
      });
      // A 101 to a request that asked for no upgrade: nothing to send on.
      upstream.on('upgrade', (answer, socket: Socket) => (socket.destroy(), page(response, 502, 'the tunnel\'s app answered what is not HTTP')));
      upstream.on('error', () => (clearTimeout(slow), page(response, 502, 'the tunnel\'s app did not answer')));
      incoming.pipe(upstream);
    }, () => page(response, 502, 'the tunnel cannot be reached now'));
  });
  // An Upgrade (a WebSocket): asked of the app as a request of its own, read by Node's http; only once the app has
  // answered 101 do the bytes go through both ways, as they come. Any other answer is sent on, and the connection ends.
  server.on('upgrade', (incoming: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const found = find(incoming);
    const refuse = (status: number, text: string) => socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n`
      + `Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 7}\r\n\r\n${status}: ${text}\n`);
    if ('status' in found) return refuse(found.status, found.text);
    socket.once('close', found.release);
    found.channel.then((channel) => {
      if (socket.destroyed) return done(channel);
      socket.once('close', () => done(channel));
      const upstream = request({ method: incoming.method, path: incoming.url, headers: forwarded(incoming, true), createConnection: () => channel as Socket });
      const slow = setTimeout(() => (upstream.destroy(), refuse(504, 'the tunnel\'s app did not answer in time')), ANSWER_MS);
      upstream.on('upgrade', (answer, app: Socket, appHead: Buffer) => {
        clearTimeout(slow);
        const lines = answer.rawHeaders.flatMap((field, i, all) => (i % 2 === 0 && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(field)
          && !/[\r\n\0]/.test(all[i + 1]!) ? [`${field}: ${all[i + 1]}\r\n`] : []));
        socket.write(`HTTP/1.1 101 Switching Protocols\r\n${lines.join('')}\r\n`);
        socket.write(appHead);
        app.write(head);
        socket.pipe(app).pipe(socket);
        app.on('error', () => socket.destroy());
        app.once('close', () => socket.destroy());
      });
      upstream.on('response', (answer) => {
        clearTimeout(slow);
        answer.resume();
        refuse(502, `the tunnel's app did not take the upgrade (it answered ${answer.statusCode})`);
      });
      upstream.on('error', () => (clearTimeout(slow), refuse(502, 'the tunnel\'s app did not answer')));
      upstream.end();
    }, () => refuse(502, 'the tunnel cannot be reached now'));
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    // A request Node's parser refuses (too large, malformed, Content-Length beside Transfer-Encoding), or headers not
    // all come in time: 400 or 408, no route, and the connection closed at once (a client that never reads our
    // answer, or never closes its side, holds nothing).
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
  server.on('error', (err) => fail(`the HTTP front cannot listen on ${host}:${portText}: ${err.message} (set TUNNELS_HTTP)`));
  server.listen(Number(portText), host, () => listening((server.address() as { port: number }).port));
}
