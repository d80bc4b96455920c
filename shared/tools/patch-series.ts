// The patch to ssh2 is a series (shared/patches/ssh2+1.17.0+NNN+NAME.patch), one change a part. This file makes a
// fresh ssh2 1.17.0 (npm's own tarball) with the first N parts applied by patch-package, as `npm install` applies
// them. `npm run patches` then checks each part: with the parts before it, its tests (those named `NAME: ...`)
// fail or are not all there; with it, they pass. Not a test itself (it runs the tests once a part); the suite's
// test/ssh2-patch.test.ts checks that the whole series applies.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The parts, in the order they apply: `{ file, name }`, from the file names. */
export function patchParts(): { file: string; name: string }[] {
  return readdirSync(join(root, 'shared', 'patches')).filter((file) => /^ssh2\+1\.17\.0\+\d{3}\+.*\.patch$/.test(file))
    .sort().map((file) => ({ file, name: /\+\d{3}\+(.*)\.patch$/.exec(file)![1]! }));
}

/** npm's tarball of ssh2 1.17.0, unpacked into `dir`/node_modules/ssh2 (from npm's cache, once npm ci has run). */
function freshSsh2(dir: string): void {
  const packed = spawnSync('npm', ['pack', 'ssh2@1.17.0', '--prefer-offline', '--silent', '--pack-destination', dir],
    { cwd: dir, encoding: 'utf8' });
  if (packed.status !== 0) throw new Error(`npm pack ssh2@1.17.0: ${packed.stderr}`);
  const unpacked = join(dir, 'unpacked');
  mkdirSync(unpacked);
  spawnSync('tar', ['xzf', join(dir, packed.stdout.trim()), '-C', unpacked, '--strip-components=1']);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  cpSync(unpacked, join(dir, 'node_modules', 'ssh2'), { recursive: true });
  rmSync(unpacked, { recursive: true });
}

/**
 * A folder with a fresh ssh2 1.17.0 in node_modules/ and the first `count` parts applied by patch-package.
 * Returns the folder, and what patch-package printed and its exit status.
 */
export function withParts(count: number): { dir: string; status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'conch-steps-patches-'));
  freshSsh2(dir);
  const patches = join(dir, 'patches');
  mkdirSync(patches);
  for (const { file } of patchParts().slice(0, count)) cpSync(join(root, 'shared', 'patches', file), join(patches, file));
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  const applied = spawnSync(process.execPath, [join(root, 'node_modules', 'patch-package', 'index.js'), '--patch-dir', 'patches'],
    { cwd: dir, encoding: 'utf8' });
  return { dir, status: applied.status, output: `${applied.stdout}${applied.stderr}` };
}

/** Makes `dir` a copy of the project whose node_modules are this one's, but for its own ssh2. */
function projectAround(dir: string): void {
  for (const name of ['shared', 'steps', 'test', 'keys', 'tsconfig.json']) {
    cpSync(join(root, name), join(dir, name), { recursive: true, filter: (path) => !/keys\/ssh_host_/.test(path) });
  }
  // ssh2's compiled ChaCha20 and AES-GCM, as npm install built them, so that it runs as the real one does.
  const build = join(root, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build');
  if (existsSync(build)) cpSync(build, join(dir, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build'), { recursive: true });
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name !== 'ssh2') symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name));
  }
}

/** Runs the tests named `NAME: ...` of the patch's test files in `dir`; resolves whether all passed, and how many. */
function partTests(dir: string, name: string): { passed: boolean; count: number } {
  // Unpatched, a test may leave a connection that never ends (the flood past the window): killed, it failed.
  const run = spawnSync(join(dir, 'node_modules', '.bin', 'tsx'), ['--test', '--test-reporter=tap',
    `--test-name-pattern=^${name}: `, 'test/ssh2-patch.test.ts', 'test/pq-kex.test.ts'],
  { cwd: dir, encoding: 'utf8', timeout: 180_000, killSignal: 'SIGKILL' });
  const count = (label: string) => Number(new RegExp(`^# ${label} (\\d+)$`, 'm').exec(run.stdout)?.[1] ?? 0);
  const ran = [...run.stdout.matchAll(/^\s*(ok|not ok) \d+ - (.*?)(?: # SKIP.*)?$/gm)]
    .filter((m) => m[2]!.startsWith(`${name}: `) && !/# SKIP/.test(m[0]));
  return { passed: run.status === 0 && count('fail') === 0 && ran.length > 0, count: ran.length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const parts = patchParts();
  // `npm run patches -- 22 23`: those parts alone (each still after every part before it)
  const only = process.argv.slice(2).map(Number);
  let failed = false;
  for (const [i, { name }] of parts.entries()) {
    if (only.length > 0 && !only.includes(i + 1)) continue;
    const withIt = withParts(i + 1);
    const without = withParts(i);
    if (withIt.status !== 0) {
      console.log(`${name}: does not apply after the parts before it\n${withIt.output}`);
      failed = true;
      continue;
    }
    projectAround(withIt.dir);
    projectAround(without.dir);
    const passing = partTests(withIt.dir, name);
    const before = partTests(without.dir, name);
    console.log(`${String(i + 1).padStart(3, '0')} ${name}: applies; its ${passing.count} test(s) `
      + `${passing.passed ? 'pass' : 'FAIL'} with it, and ${before.passed ? 'pass without it too' : 'fail without it'}`);
    if (!passing.passed) failed = true;
    rmSync(withIt.dir, { recursive: true });
    rmSync(without.dir, { recursive: true });
  }
  process.exit(failed ? 1 : 0);
}
