// Step 22's tunnels: requests a second through a tunnel (the step's HTTP front, its channel, OpenSSH's ssh -R, the
// app) beside the same app asked directly, with keep-alive at 8 and 64 requests at a time, and a large download's
// MB/s both ways. The app runs in a process of its own, and so do curl and ssh; the load comes from this process.
import { spawn, spawnSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { freePort } from '../helpers.ts';
import { type Args, dir, env, median, progress, repeat, SECONDS, sleep, started, startStep } from './harness.ts';

/** What the app sends for /big: 256 MiB. */
const BIG = 256 * 1024 * 1024;

/** The app, as a reader's would be: a short answer for /, and BIG bytes for /big. Resolves with its port. */
async function startApp(): Promise<number> {
  const port = await freePort();
  const source = `const http = require('node:http');
const chunk = Buffer.alloc(1 << 20, 120);
http.createServer((request, response) => {
  if (request.url !== '/big') return response.end('hello from the app\\n');
  response.writeHead(200, { 'Content-Length': ${BIG} });
  let sent = 0;
  const more = () => { while (sent < ${BIG}) { sent += chunk.length; if (!response.write(chunk)) return response.once('drain', more); } response.end(); };
  more();
}).listen(${port}, '127.0.0.1');`;
  started.push(spawn(process.execPath, ['-e', source], { stdio: 'ignore', detached: true }));
  await waitForAnswer(port, 'localhost');
  return port;
}

/** Resolves once GET / on `port` with `host` answers 200. */
async function waitForAnswer(port: number, host: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const status = await new Promise<number>((resolve) => request({ port, host: '127.0.0.1', path: '/', headers: { Host: host }, agent: false },
      (response) => (response.resume(), resolve(response.statusCode ?? 0))).on('error', () => resolve(0)).end());
    if (status === 200) return;
    if (attempt === 100) throw new Error(`nothing answers on port ${port} for ${host}`);
    await sleep(100);
  }
}

/** GET / on `port` with `host`, `concurrency` at a time on kept-alive connections, for SECONDS: the rate and latencies. */
async function rate(port: number, host: string, concurrency: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  let failed = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const begun = performance.now();
      const ok = await new Promise<boolean>((resolve) => request({ port, host: '127.0.0.1', path: '/', headers: { Host: host }, agent },
        (response) => response.resume().on('end', () => resolve(response.statusCode === 200))).on('error', () => resolve(false)).end());
      if (ok) latencies.push(performance.now() - begun);
      else failed += 1;
    }
  }));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / SECONDS, p50: median(latencies), p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0, failed };
}

/** MB/s of /big on `port` with `host`, by curl. */
function download(port: number, host: string): { mbps: number } {
  const result = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', '-H', `Host: ${host}`,
    `http://127.0.0.1:${port}/big`], { encoding: 'utf8' });
  const [size, seconds] = result.stdout.split(' ').map(Number);
  if (size !== BIG) throw new Error(`curl brought ${size} bytes: ${result.stderr}`);
  return { mbps: size! / 1e6 / seconds! };
}

export async function measureTunnels(args: Args, results: Record<string, any>): Promise<void> {
  if (args.attacks || !'step 22 tunnels'.includes(args.only ?? '')) return;
  progress('step 22: requests through a tunnel, beside the app asked directly');
  const app = await startApp();
  const http = await freePort();
  const step = await startStep('22-tunnels.ts', { ...env, TUNNELS_HTTP: `127.0.0.1:${http}`, TUNNEL_NAMES: join(dir, 'tunnel-names'),
    TUNNEL_CONNECTIONS_MAX: '1000' });
  const askpass = join(dir, 'askpass-tunnel');
  writeFileSync(askpass, '#!/bin/sh\necho wonderland\n', { mode: 0o755 });
  started.push(spawn('ssh', ['-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no', '-N',
    '-R', `bench:80:localhost:${app}`, '-p', String(step.port), 'alice@127.0.0.1'],
  { env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' }, stdio: 'ignore', detached: true }));
  const tunnelled = `bench.localhost:${http}`;
  await waitForAnswer(http, tunnelled);
  const figures: Record<string, Record<string, number>> = {};
  for (const concurrency of [8, 64]) {
    figures[`app directly, c=${concurrency}`] = await repeat(() => rate(app, 'localhost', concurrency));
    figures[`through the tunnel, c=${concurrency}`] = await repeat(() => rate(http, tunnelled, concurrency));
  }
  figures['app directly, 256 MiB download'] = await repeat(async () => download(app, 'localhost'));
  figures['through the tunnel, 256 MiB download'] = await repeat(async () => download(http, tunnelled));
  results.tunnels = figures;
  await step.stop();
  console.table(Object.fromEntries(Object.entries(figures).map(([name, each]) => [name, 'mbps' in each
    ? { 'MB/s': each.mbps!.toFixed(0) }
    : { 'requests/s': each.perSecond!.toFixed(0), 'p50 ms': each.p50!.toFixed(2), 'p99 ms': each.p99!.toFixed(2), failed: each.failed }])));
}
