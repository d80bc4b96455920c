// --startup: how long step 03 takes to listen, split: the reader's command (npx tsx), the tools alone (npx tsx with
// a file that does nothing), and the step under tsx's loader without npx and tsx's own process (node --import tsx),
// on this Node and on the current LTS (where .ci/today installed it). Nine starts of each, in turn; medians.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { root } from '../helpers.ts';
import { CURRENT_LTS, env, fail, median, progress, startStep, todayNodes } from './harness.ts';
import { projectUnder } from './today.ts';

export async function measureStartup(): Promise<void> {
  const lts = join(todayNodes, 'node26', 'bin');
  const runtimes: { label: string; nodeDir?: string; tree?: string }[] = [{ label: `Node ${process.versions.node}` }];
  if (existsSync(join(lts, 'node')) && !process.version.startsWith('v26.')) {
    progress(`${CURRENT_LTS}: the project with node_modules installed under it (once; then kept)`, 900);
    const made = projectUnder(lts, 'node26');
    if ('why' in made) fail(made.why);
    runtimes.push({ label: CURRENT_LTS, nodeDir: lts, tree: made.tree });
  }
  const rows: Record<string, Record<string, number>> = {};
  for (const { label, nodeDir, tree = root } of runtimes) {
    const times: Record<string, number[]> = { 'npx tsx steps/03-trivial-channel.ts': [], 'npx tsx test/bench/tools-alone.ts': [],
      'node --import tsx steps/03-trivial-channel.ts': [] };
    for (let run = 0; run < 9; run++) {
      progress(`start-up on ${label}, ${run + 1} of 9`);
      for (const file of ['03-trivial-channel.ts', 'test/bench/tools-alone.ts']) {
        const started = await startStep(file, env, [], nodeDir, tree);
        times[`npx tsx ${file.includes('/') ? file : `steps/${file}`}`]!.push(started.startupMs);
        await started.stop();
      }
      const begun = performance.now();
      const child = spawn(join(nodeDir ?? dirname(process.execPath), 'node'), ['--import', 'tsx', 'steps/03-trivial-channel.ts', '--port', '0'],
        { cwd: tree, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk) => { output += chunk; if (/listening on /.test(output)) resolve(); });
        child.once('exit', (code) => reject(new Error(`step 03 exited with ${code}`)));
      });
      times['node --import tsx steps/03-trivial-channel.ts']!.push(performance.now() - begun);
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    rows[label] = Object.fromEntries(Object.entries(times).map(([what, each]) => [`${what}, ms`, Number(median(each).toFixed(0))]));
  }
  console.table(rows);
}
