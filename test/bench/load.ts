// The load generator's work, for `npm run bench` and its load processes (test/bench/load-process.ts): ssh2's client.
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';

/** How long one session may take before it counts as timed out: a server that stops answering fails the run. */
export const SESSION_TIMEOUT_MS = 10_000;

/** Connects and logs in; `onAlgorithms` hears the key exchange, host key and cipher agreed on. */
export function connect(config: ConnectConfig, onAlgorithms?: (line: string) => void): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    client.once('ready', () => resolve(client)).on('error', reject); // later errors too: a reset after the end
    const debug = onAlgorithms && ((line: string) => {
      const match = /^Handshake: (KEX algorithm|Host key format|S->C cipher): (.*)$/.exec(line);
      if (match) onAlgorithms(match[2]!);
    });
    client.connect({ host: '127.0.0.1', readyTimeout: SESSION_TIMEOUT_MS, ...config, debug });
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

/** Thrown for a session that took longer than SESSION_TIMEOUT_MS. */
export class TimedOut extends Error {}

/** One whole session: connect, key exchange, log in, open a session, shell, read what it says, close; its ms. */
export async function session(config: ConnectConfig): Promise<number> {
  const begun = performance.now();
  let timer: NodeJS.Timeout | undefined;
  let client: ssh2.Client | undefined;
  const timeout = new Promise<never>((resolve, reject) => {
    timer = setTimeout(() => {
      client?.destroy();
      reject(new TimedOut(`a session took more than ${SESSION_TIMEOUT_MS / 1000} s`));
    }, SESSION_TIMEOUT_MS);
  });
  const whole = (async () => {
    client = await connect(config);
    await new Promise<void>((resolve, reject) => client!.shell(false, (err, channel) => {
      if (err) return reject(err);
      channel.resume();
      channel.once('close', () => resolve());
      // Step 03 and sshd close the channel by themselves; step 09's echo protocol closes it when the input ends.
      channel.end();
    }));
    await close(client);
  })();
  try {
    await Promise.race([whole, timeout]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - begun;
}

/**
 * Runs `count` sessions at a time until `deadline` (performance.now()), or until `sessions` have been started;
 * the latencies, how many failed, and how many of those timed out. A session that times out ends the run: the
 * server has stopped answering, and waiting on would only make the run as long as its deadline.
 */
export async function lanes(config: ConnectConfig, count: number, deadline: number, sessions = Infinity) {
  const latencies: number[] = [];
  let failed = 0;
  let timedOut = 0;
  let begun = 0;
  await Promise.all(Array.from({ length: count }, async () => {
    while (performance.now() < deadline && begun < sessions && timedOut === 0) {
      begun += 1;
      // A session the server turns away is counted, not fatal: the run goes on, and says how many there were.
      await session(config).then((ms) => latencies.push(ms), (err) => {
        failed += 1;
        if (err instanceof TimedOut) timedOut += 1;
      });
    }
  }));
  return { latencies, failed, timedOut };
}

/**
 * Starts `sessions` sessions at `perSecond`, on a fixed schedule whether the ones before have ended or not (an open
 * loop, as independent clients arrive), with at most 256 under way: a start that finds 256 is counted as late,
 * and made when a place frees. The latencies, how many failed, how many timed out, and how many starts were late.
 */
export async function paced(config: ConnectConfig, perSecond: number, sessions: number) {
  const latencies: number[] = [];
  let failed = 0;
  let timedOut = 0;
  let late = 0;
  let underWay = 0;
  const running: Promise<void>[] = [];
  const begun = performance.now();
  for (let i = 0; i < sessions && timedOut === 0; i++) {
    const due = begun + (i * 1000) / perSecond;
    if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
    if (underWay >= 256) {
      late += 1;
      while (underWay >= 256) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    underWay += 1;
    running.push(session(config).then((ms) => void latencies.push(ms), (err) => {
      failed += 1;
      if (err instanceof TimedOut) timedOut += 1;
    }).finally(() => (underWay -= 1)));
  }
  await Promise.all(running);
  return { latencies, failed, timedOut, late };
}
