// Step 22's HTTP front: each request's Host names a tunnel, and the request goes through a channel of that tunnel's
// to the app on its owner's computer. Node's http reads both sides (never this file): keep-alive with the browser,
// bodies streamed both ways at the pace of the slower side, and an Upgrade (WebSockets) passed through as bytes.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { fail } from '../core/errors.ts';
import { limits } from '../core/options.ts';

/**
 * Opens a channel to one of the tunnels of `name`, for a request from `from` that gave `authorization`: undefined
 * when no tunnel has the name (404), `'password'` when the tunnel wants a user and password it did not give (401).
 */
export type Route = (name: string, from: { address: string; port: number }, authorization?: string) =>
  Promise<Duplex> | 'password' | undefined;

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
const hopByHop = (field: string, connection = '') =>
  HOP_BY_HOP.includes(field.toLowerCase()) || connection.toLowerCase().split(/\s*,\s*/).includes(field.toLowerCase());

/** The request's headers as the app gets them: its own, and who asked, through what, for which host. */
function forwarded(incoming: IncomingMessage, upgrade = false): IncomingHttpHeaders {
  const headers = Object.fromEntries(Object.entries(incoming.headers)
    .filter(([field]) => upgrade || !hopByHop(field, incoming.headers.connection)));
  const from = incoming.socket.remoteAddress ?? '';
  headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${from}` : from;
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
  /** The channels open for each name now: at most TUNNEL_CONNECTIONS_MAX, so that no one name takes every connection. */
  const serving = new Map<string, number>();
  const open = (incoming: IncomingMessage) => {
    const name = nameIn(incoming.headers.host);
    const from = { address: incoming.socket.remoteAddress ?? '', port: incoming.socket.remotePort ?? 0 };
    if (name === undefined) return undefined;
    if ((serving.get(name) ?? 0) >= limits.tunnelConnectionsMax) return 'busy';
    const opening = route(name, from, incoming.headers.authorization);
    if (typeof opening !== 'object') return opening;
    serving.set(name, (serving.get(name) ?? 0) + 1);
    const done = () => (serving.get(name) === 1 ? serving.delete(name) : serving.set(name, serving.get(name)! - 1));
    return opening.then((channel) => (channel.once('close', done), channel), (err: Error) => {
      done();
      throw err;
    });
  };
  server.on('request', (incoming: IncomingMessage, response: ServerResponse) => {
    const opening = open(incoming);
    if (!opening) return page(response, 404, `no tunnel is named ${nameIn(incoming.headers.host) ?? 'by this host'}`);
    if (opening === 'busy') return page(response, 503, `${nameIn(incoming.headers.host)} has as many connections as it may (TUNNEL_CONNECTIONS_MAX)`);
    if (opening === 'password') {
      response.setHeader('WWW-Authenticate', `Basic realm="${nameIn(incoming.headers.host)}", charset="UTF-8"`);
      return page(response, 401, 'this tunnel wants a user and password');
    }
    opening.then((channel) => {
      // One channel a request, to the app through the owner's ssh; the browser's connection is kept alive here.
      const upstream = request({ method: incoming.method, path: incoming.url, headers: forwarded(incoming), createConnection: () => channel as Socket });
      upstream.on('response', (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders.flatMap((field, i, all) =>
          (i % 2 === 0 && !hopByHop(field, answer.headers.connection) ? [field, all[i + 1]!] : [])));
        answer.pipe(response);
        answer.once('close', () => answer.complete || response.destroy()); // the tunnel went halfway: so does the answer
      });
      upstream.on('error', () => page(response, 502, 'the tunnel\'s app did not answer'));
      response.on('close', () => channel.destroy());
      incoming.pipe(upstream);
    }, () => page(response, 502, 'the tunnel cannot be reached now'));
  });
  // An Upgrade (a WebSocket): the request as it came, then the bytes both ways, as they come.
  server.on('upgrade', (incoming: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refuse = (status: string) => socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    const opening = open(incoming);
    if (!opening) return refuse('404 Not Found');
    if (opening === 'password') return refuse('401 Unauthorized');
    if (opening === 'busy') return refuse('503 Service Unavailable');
    opening.then((channel) => {
      const headers = Object.entries(forwarded(incoming, true)).flatMap(([field, value]) =>
        (Array.isArray(value) ? value : [value ?? '']).map((each) => `${field}: ${each}\r\n`));
      channel.write(`${incoming.method} ${incoming.url} HTTP/1.1\r\n${headers.join('')}\r\n`);
      channel.write(head);
      socket.pipe(channel).pipe(socket);
      channel.on('error', () => socket.destroy());
      socket.once('close', () => channel.destroy());
      channel.once('close', () => socket.destroy());
    }, () => refuse('502 Bad Gateway'));
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
