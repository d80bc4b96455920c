// The load generator's work, for `npm run bench` and its load processes (test/bench-load.ts): ssh2's client.
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';

/** Connects and logs in; `onAlgorithms` hears the key exchange, host key and cipher agreed on. */
export function connect(config: ConnectConfig, onAlgorithms?: (line: string) => void): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    client.once('ready', () => resolve(client)).on('error', reject); // later errors too: a reset after the end
    const debug = onAlgorithms && ((line: string) => {
      const match = /^Handshake: (KEX algorithm|Host key format|S->C cipher): (.*)$/.exec(line);
      if (match) onAlgorithms(match[2]!);
    });
    client.connect({ host: '127.0.0.1', ...config, debug });
    // The load generator turns Nagle's algorithm off too, or its own small writes would wait for ACKs.
    client.setNoDelay(true);
  });
}

export function close(client: ssh2.Client): Promise<void> {
  return new Promise((resolve) => {
    client.once('close', () => resolve());
    client.end();
  });
}

/** One whole session: connect, key exchange, log in, open a session, shell, read what it says, close; its ms. */
export async function session(config: ConnectConfig): Promise<number> {
  const begun = performance.now();
  const client = await connect(config);
  await new Promise<void>((resolve, reject) => client.shell(false, (err, channel) => {
    if (err) return reject(err);
    channel.resume();
    channel.once('close', () => resolve());
    // Step 03 and sshd close the channel by themselves; step 09's echo protocol closes it when the input ends.
    channel.end();
  }));
  await close(client);
  return performance.now() - begun;
}

/** Runs `lanes` sessions at a time until `deadline` (performance.now()); the latencies, and how many failed. */
export async function lanes(config: ConnectConfig, count: number, deadline: number) {
  const latencies: number[] = [];
  let failed = 0;
  await Promise.all(Array.from({ length: count }, async () => {
    while (performance.now() < deadline) {
      // A session the server turns away is counted, not fatal: the run goes on, and says how many there were.
      await session(config).then((ms) => latencies.push(ms), () => (failed += 1));
    }
  }));
  return { latencies, failed };
}
