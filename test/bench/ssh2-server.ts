// The bench's "ssh2 alone": what step 03 does (a password, then a session that says one line and closes) on the
// same patched ssh2, the same algorithms and the same host keys, but with none of the project's own layer
// (shared/server/listen.ts: the limits, the log lines, the PROXY check, the drain). `npm run bench -- --versus-go`
// measures it beside step 03 and Go, so that the difference between those two splits into ssh2's part and ours.
// Run: npx tsx test/bench/ssh2-server.ts --port 0     Prints `listening on 127.0.0.1:PORT`, as the steps do.
import { createServer } from 'node:net';
import ssh2 from 'ssh2';
import { algorithms } from '../../shared/server/algorithms.ts';
import { readHostKeys } from '../../shared/server/host-keys.ts';
import { options } from '../../shared/core/options.ts';

const { Server } = ssh2;

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client) => {
  client.on('error', () => {});
  client.on('authentication', (ctx) => {
    if (ctx.method === 'password' && ctx.username === 'alice' && ctx.password === 'wonderland') ctx.accept();
    else ctx.reject(['password']);
  });
  client.on('session', (acceptSession) => {
    acceptSession().on('shell', (acceptShell) => {
      const channel = acceptShell();
      channel.write('This session is very simple. Goodbye!\r\n');
      channel.end();
    });
  });
});

const listener = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  server.injectSocket(socket);
});
listener.listen(options.port, options.host, () => {
  const bound = listener.address();
  console.log(`listening on ${options.host}:${typeof bound === 'object' && bound ? bound.port : options.port}`);
});
