// Step 18: Ink sessions opened, drawn and dropped one after another. Each has its own React tree: a tree, a timer
// or a listener left behind by a dropped connection would show as memory that grows with the sessions.
import ssh2 from 'ssh2';
import { residentMiB } from '../hostile.ts';
import { alice, type Args, env, progress, sleep, startStep } from './harness.ts';

/** Measures step 18's heap and resident memory after 10, 110 and 210 sessions into `results.ink`. */
export async function measureInk(args: Args, results: Record<string, any>): Promise<void> {
  if (!args.attacks && 'step 18 ink'.includes(args.only ?? '')) {
    const ink = await startStep('18-ink-app.ts', env, ['--import', './test/bench/spy-heap.ts']);
    let heapLines = '';
    ink.output.on('data', (chunk: Buffer) => (heapLines += chunk));
    /** The heap in use after a full collection in the step (spy-heap.ts), in MiB. */
    const heapAfterCollection = async () => {
      const before = heapLines.length;
      process.kill(ink.pid, 'SIGUSR2');
      for (let i = 0; i < 100 && !/collection: [\d.]+ MiB\n/.test(heapLines.slice(before)); i++) await sleep(50);
      return Number(/collection: ([\d.]+) MiB/.exec(heapLines.slice(before))?.[1] ?? NaN);
    };
    /** One session with a 100x30 pty: logs in, waits for the app's first screen, then drops the connection. */
    const drawnAndDropped = () => new Promise<void>((resolve, reject) => {
      const client = new ssh2.Client();
      const timer = setTimeout(() => (client.destroy(), reject(new Error('no screen within 10 s'))), 10_000);
      client.on('error', () => {});
      client.on('ready', () => client.shell({ term: 'xterm', cols: 100, rows: 30 }, (err, channel) => {
        if (err) return reject(err);
        let said = '';
        channel.on('data', (chunk: Buffer) => {
          said += chunk;
          if (!said.includes('Who is who')) return;
          clearTimeout(timer);
          client.destroy();
          resolve();
        });
      }));
      client.connect({ host: '127.0.0.1', port: ink.port, ...alice.password });
    });
    progress('step 18: Ink sessions, drawn and dropped');
    for (let i = 0; i < 10; i++) await drawnAndDropped(); // warmed up: Ink, React and Yoga loaded and compiled
    const measured: Record<string, { heapMiB: number; residentMiB: number }> = {};
    for (const [sessions, more] of [[10, 0], [110, 100], [210, 100]] as const) {
      for (let i = 0; i < more; i++) await drawnAndDropped();
      await sleep(1000);
      measured[`after ${sessions} sessions`] = { heapMiB: await heapAfterCollection(), residentMiB: residentMiB(ink.pid) };
    }
    results.ink = measured;
    console.table(Object.fromEntries(Object.entries(measured).map(([name, m]) => [`step 18, ${name}`, {
      'heap after a full collection, MiB': m.heapMiB.toFixed(2), 'resident, MiB': m.residentMiB.toFixed(1),
    }])));
    await ink.stop();
  }
}
