// A web page of the recorded sessions (step 20), on this machine alone (127.0.0.1): a list of them (user, start,
// length), each played in the browser by asciinema-player, served from node_modules (no CDN). Whoever opens the
// address the step prints, with its token, is logged in (a cookie); anyone else gets 401.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, createReadStream, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { explain, fail } from '../core/errors.ts';
import { recordingName, recordingsDir } from './session-recording.ts';

/** The most connections the page keeps open at once: past this, a new one is closed at once (the SSH side goes on). */
export const PAGE_CONNECTIONS_MAX = 64;
const player = fileURLToPath(new URL('../../node_modules/asciinema-player/dist/bundle/', import.meta.url));

/** The page's script: makes the player of the recording the page names, showing its last frame until played. */
const playScript = `const box = document.getElementById('player');
// A moment after the last event: the frame at its very time is the one before it.
AsciinemaPlayer.create(box.dataset.src, box, { poster: 'npt:' + (Number(box.dataset.end) + 1), fit: false });
`;

/** Text made safe to put in HTML, in an element or in a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Reads `length` bytes of `file` from `position` (fewer at its end). */
function readPart(file: string, position: number, length: number): string {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, position)).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * A recording's user, title, start, length in seconds (the time of its last event) and whether RECORDING_MAX cut
 * it, from its first and last lines. A header that cannot be read (not JSON, or longer than 16 KiB) does not hide
 * the recording: its name says whose it is and when it started.
 */
export function summary(name: string) {
  const file = join(recordingsDir, name);
  const head = readPart(file, 0, 16384).split('\n')[0]!;
  let header: { timestamp?: number; title?: string; env?: { USER?: string } } = {};
  try {
    header = JSON.parse(head) as typeof header;
  } catch {} // the name says the rest
  const [, day, hours, minutes, seconds, named] = /^(\d{4}-\d\d-\d\d)T(\d\d)-(\d\d)-(\d\d)Z-(.+)-[0-9a-f]{8}\.cast$/.exec(name)!;
  const size = statSync(file).size;
  const tail = readPart(file, Math.max(0, size - 65536), 65536).split('\n').filter((line) => line.startsWith('['));
  let length = 0;
  try {
    length = Number((JSON.parse(tail.at(-1) ?? '[0]') as [number])[0]) || 0;
  } catch {} // a last line being written: the one before it would do, but 0 is near enough for a list
  return {
    user: String(header.env?.USER ?? named),
    title: typeof header.title === 'string' ? header.title : `${name} (its header cannot be read)`,
    start: header.timestamp === undefined ? new Date(`${day}T${hours}:${minutes}:${seconds}Z`) : new Date(header.timestamp * 1000),
    length,
    cut: tail.some((line) => line.includes('"m","recording cut at ')),
  };
}

function page(response: ServerResponse, title: string, body: string, head = ''): void {
  response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(`<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>${head}</head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>
`);
}

/**
 * Starts the recordings page on 127.0.0.1, port `RECORDINGS_PORT` (default 2080; 0 picks a free one), and prints
 * its address with a token made at start: `recordings: http://127.0.0.1:2080/?token=...`.
 */
export function serveRecordings(): void {
  const token = randomBytes(16).toString('hex');
  const portText = process.env.RECORDINGS_PORT || '2080';
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) fail(`RECORDINGS_PORT must be a number from 0 to 65535, not "${portText}"`);
  const loggedIn = (cookie: string | undefined) => {
    const given = Buffer.from(/(?:^|;\s*)token=([0-9a-f]{32})(?:;|$)/.exec(cookie ?? '')?.[1] ?? '');
    return given.length === 32 && timingSafeEqual(given, Buffer.from(token));
  };
  const answer = (request: IncomingMessage, response: ServerResponse) => {
    // Nothing from elsewhere, no inline script, no framing; the player sets styles of its own, and runs WebAssembly.
    response.setHeader('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; "
      + "script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'");
    response.setHeader('X-Content-Type-Options', 'nosniff');
    response.setHeader('Cache-Control', 'no-store');
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    if (request.method !== 'GET') return void response.writeHead(405).end();
    if (url.searchParams.get('token') === token) {
      // The token becomes a cookie, and leaves the address bar (and the browser's history).
      return void response.writeHead(303, { Location: url.pathname, 'Set-Cookie': `token=${token}; HttpOnly; SameSite=Strict; Path=/` }).end();
    }
    if (!loggedIn(request.headers.cookie)) {
      return void response.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' })
        .end('401: open the address the step printed as it started (with its token).\n');
    }
    const names = readdirSync(recordingsDir).filter((name) => recordingName.test(name)).sort().reverse();
    let asked = ''; // a recording's name, in the list's own spelling: nothing else is ever opened
    try {
      asked = decodeURIComponent(url.pathname.replace(/^\/(play|recordings)\//, ''));
    } catch {} // a malformed %-escape names nothing
    if (url.pathname === '/') {
      // Every recording has its row: one that cannot be read says so, and why.
      const rows = names.map((name) => {
        try {
          const { user, title, start, length, cut } = summary(name);
          return `<tr><td>${escapeHtml(user)}</td><td>${start.toISOString()}</td><td>${length.toFixed(1)} s${cut ? ' (cut)' : ''}</td>`
            + `<td><a href="/play/${encodeURIComponent(name)}">${escapeHtml(title || name)}</a></td></tr>`;
        } catch (err) {
          return `<tr><td colspan="3">?</td><td>${escapeHtml(name)}: cannot be read (${escapeHtml(explain(err))})</td></tr>`;
        }
      });
      return page(response, 'Recorded sessions', rows.length
        ? `<table><tr><th>user</th><th>start</th><th>length</th><th>session</th></tr>\n${rows.join('\n')}\n</table>`
        : '<p>No session recorded yet.</p>');
    }
    if (url.pathname.startsWith('/play/') && names.includes(asked)) {
      let about: ReturnType<typeof summary>;
      try {
        about = summary(asked);
      } catch (err) {
        return page(response, asked, `<p><a href="/">All sessions</a></p>\n<p>This recording cannot be read: ${escapeHtml(explain(err))}.</p>`);
      }
      const { user, title, length } = about;
      return page(response, title || `${user}: ${asked}`, `<p><a href="/">All sessions</a></p>
<div id="player" data-src="/recordings/${encodeURIComponent(asked)}" data-end="${length}"></div>
<script src="/player.js"></script><script src="/play.js"></script>`, '<link rel="stylesheet" href="/player.css">');
    }
    if (url.pathname.startsWith('/recordings/') && names.includes(asked)) {
      response.writeHead(200, { 'Content-Type': 'application/x-asciicast' });
      return void createReadStream(join(recordingsDir, asked)).on('error', () => response.destroy()).pipe(response);
    }
    const assets: Record<string, [string, () => string | Buffer]> = {
      '/player.js': ['text/javascript', () => readFileSync(join(player, 'asciinema-player.min.js'))],
      '/player.css': ['text/css', () => readFileSync(join(player, 'asciinema-player.css'))],
      '/play.js': ['text/javascript', () => playScript],
    };
    const asset = assets[url.pathname];
    if (asset) return void response.writeHead(200, { 'Content-Type': asset[0] }).end(asset[1]());
    response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('404: no such page\n');
  };
  const server = createServer((request, response) => {
    try {
      answer(request, response);
    } catch { // a recording that is not one after all, or went away: nothing a request does ends the step
      if (!response.headersSent) response.writeHead(500);
      response.end();
    }
  });
  // Bounded like the SSH side: idle or slow connections (no token needed to open one) could otherwise hold every
  // file the process may open, and then SSH logins fail too. A request has 10 s for its headers and 30 s in all.
  Object.assign(server, { maxConnections: PAGE_CONNECTIONS_MAX, headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5000 });
  server.on('error', (err) => fail(`the recordings page cannot listen on 127.0.0.1:${portText}: ${err.message} (set RECORDINGS_PORT)`));
  server.listen(Number(portText), '127.0.0.1', () => {
    console.log(`recordings: http://127.0.0.1:${(server.address() as AddressInfo).port}/?token=${token}`);
  });
}
