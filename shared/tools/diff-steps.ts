// `npm run diff -- 2 3`: what step 03 adds to step 02, as a unified diff; `npm run diff -- 11`: what step 11 adds to
// the step it builds on. Not a test; the diffs in the lessons (steps/NN-name.md) come from it (`npm run diff --
// --readme` rewrites them).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const stepsDir = fileURLToPath(new URL('../../steps/', import.meta.url));

/** `steps/03-trivial-channel.ts` for `3` or `03`. */
const usage = 'usage: npm run diff -- 11 for what step 11 adds to the step it builds on, or npm run diff -- 2 3';

function stepFile(number: string | undefined): string {
  if (!number) {
    console.error(`error: which step? ${usage}`);
    process.exit(2);
  }
  const prefix = `${String(Number(number)).padStart(2, '0')}-`;
  const name = readdirSync(stepsDir).find((file) => file.startsWith(prefix) && file.endsWith('.ts'));
  if (!/^\d+$/.test(number) || !name) {
    console.error(`error: no step numbered "${number}" (${usage})`);
    process.exit(2);
  }
  return `steps/${name}`;
}

/** The step that step `number` builds on: the one its header names ("Step 11, built on step 02:"), else the one before. */
export function baseOf(number: string): string {
  const file = stepFile(number);
  const header = readFileSync(fileURLToPath(new URL(`../../${file}`, import.meta.url)), 'utf8').split('\n')[0]!;
  return /^\/\/ Step \d+, built on step (\d+):/.exec(header)?.[1] ?? String(Number(number) - 1).padStart(2, '0');
}

/** The numbers of all the steps, in order: `['01', '02', ...]`. */
export function stepNumbers(): string[] {
  return readdirSync(stepsDir).filter((file) => /^\d\d-.*\.ts$/.test(file)).map((file) => file.slice(0, 2)).sort();
}

/** The unified diff between two steps, with their paths as labels (no dates), as the README shows it. */
export function diffSteps(from: string, to: string): string {
  const [a, b] = [stepFile(from), stepFile(to)];
  const result = spawnSync('diff', ['-u', '--label', a, '--label', b, a, b], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    encoding: 'utf8',
  });
  if (result.status !== 0 && result.status !== 1) {
    console.error(`error: diff failed: ${result.stderr || result.error?.message}`);
    process.exit(2);
  }
  return result.stdout;
}

/**
 * The lines step `to` adds to step `from`, below its header comment and leaving out imports: each run of added
 * lines as it stands in the step, with `// ...` between runs. A lesson shows these; `npm run diff` shows the rest.
 */
export function addedLines(from: string, to: string): string {
  const [a, b] = [stepFile(from), stepFile(to)];
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const diff = spawnSync('diff', ['-U0', a, b], { cwd: root, encoding: 'utf8' }).stdout;
  const lines = readFileSync(`${root}/${b}`, 'utf8').split('\n');
  const header = lines.findIndex((line) => !line.startsWith('//'));
  const runs: [number, number][] = [];
  for (const [, start, count] of diff.matchAll(/^@@ -\S+ \+(\d+)(?:,(\d+))? @@/gm)) {
    const first = Math.max(Number(start) - 1, header);
    const end = Number(start) - 1 + Number(count ?? 1);
    if (end <= first || lines.slice(first, end).every((line) => line.startsWith('import') || line.trim() === '')) continue;
    // Runs a line or two apart read better as one.
    const last = runs.at(-1);
    if (last && first - last[1] <= 2) last[1] = end;
    else runs.push([first, end]);
  }
  return runs.map(([first, end]) => lines.slice(first, end).join('\n').replace(/\n+$/, '')).join('\n// ...\n');
}

/**
 * How much of what changes from step `from` to step `to` is code: the lines `diff -u` adds or removes, leaving out
 * blank ones, that are not comments (a line of code with a comment after it counts as code).
 */
export function codeShare(from: string, to: string): { code: number; comments: number } {
  const changed = diffSteps(from, to).split('\n').filter((line) => /^[-+](?![-+]{2} )/.test(line));
  const lines = changed.map((line) => line.slice(1).trim()).filter((line) => line !== '');
  const comments = lines.filter((line) => /^(\/\/|\/\*|\*)/.test(line)).length;
  return { code: lines.length - comments, comments };
}

/** The README and the lessons (`steps/NN-name.md`): the pages that quote the steps. */
export function pages(): string[] {
  const lessons = readdirSync(stepsDir).filter((file) => file.endsWith('.md')).map((file) => `steps/${file}`);
  return ['README.md', ...lessons];
}

/**
 * Rewrites every `<!-- diff: A B -->` block of the README and the lessons with the current diff, and every
 * `<!-- adds: A B -->` block with the lines step B adds (`--readme`).
 */
function updateReadme(): void {
  for (const page of pages()) {
    const path = fileURLToPath(new URL(`../../${page}`, import.meta.url));
    const text = readFileSync(path, 'utf8').replace(
      /^<!-- diff: (\d+) (\d+) -->\n```diff\n[\s\S]*?^```$/gm,
      (_, from: string, to: string) => `<!-- diff: ${from} ${to} -->\n\`\`\`diff\n${diffSteps(from, to)}\`\`\``,
    ).replace(
      /^<!-- adds: (\d+) (\d+) -->\n```ts\n[\s\S]*?^```$/gm,
      (_, from: string, to: string) => `<!-- adds: ${from} ${to} -->\n\`\`\`ts\n${addedLines(from, to)}\n\`\`\``,
    );
    writeFileSync(path, text);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--readme') updateReadme();
  else if (process.argv.length === 3) process.stdout.write(diffSteps(baseOf(process.argv[2]!), process.argv[2]!));
  else process.stdout.write(diffSteps(process.argv[2] ?? '', process.argv[3] ?? ''));
}
