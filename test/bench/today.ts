// What `npm run bench -- --versus-go` runs on besides this machine's Node: Go 1.27 from the Debian testing root that
// .ci/today makes (with golang-go and golang-golang-x-crypto-dev, x/crypto 0.58), and a copy of the project whose
// node_modules npm installed under Node 26, so that native bindings (ssh2's AES-GCM, cpu-features) are built for it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { root } from '../helpers.ts';

const cache = process.env.CONCH_STEPS_CACHE || '/var/tmp/conch-steps';

/**
 * Builds each of test/bench/NAME.go into `outDir`/NAME with the Go of the Debian testing root (statically: the programs
 * run outside the root), in GOPATH mode with Debian's x/crypto; its `go version`, or why it cannot (needs root).
 */
export function buildWithTodaysGo(names: string[], outDir: string): { version: string } | { why: string } {
  const testing = join(cache, 'debian-testing');
  const how = 'sudo bash .ci/today adds Go 1.27 to the Debian testing root';
  if (!existsSync(join(testing, 'usr', 'bin', 'go'))) return { why: `no Go in ${testing} (${how})` };
  const inside = '/tmp/conch-steps-bench-go';
  mkdirSync(join(testing, inside), { recursive: true });
  for (const name of names) copyFileSync(join(root, 'test', 'bench', `${name}.go`), join(testing, inside, `${name}.go`));
  // Go reads /proc/self/exe: mounted for the build alone.
  const mounted = spawnSync('mount', ['-t', 'proc', 'proc', join(testing, 'proc')], { encoding: 'utf8' });
  if (mounted.status !== 0) return { why: `cannot mount /proc in the root (${mounted.stderr.trim()}; run as root)` };
  try {
    const script = [...names.map((name) => `go build -o ${name} ${name}.go`), 'go version'].join(' && ');
    const built = spawnSync('chroot', [testing, 'env', 'GO111MODULE=off', 'GOPATH=/usr/share/gocode', `GOCACHE=${inside}/cache`,
      'CGO_ENABLED=0', 'GOTOOLCHAIN=local', 'GOTELEMETRY=off', 'HOME=/tmp', 'sh', '-c', `cd ${inside} && ${script}`], { encoding: 'utf8' });
    if (built.status !== 0) return { why: `it did not build: ${built.stderr.trim().split('\n').slice(0, 3).join(' ')}` };
    for (const name of names) copyFileSync(join(testing, inside, name), join(outDir, name));
    spawnSync('chmod', ['755', ...names.map((name) => join(outDir, name))]);
    return { version: built.stdout.trim() };
  } finally {
    spawnSync('umount', [join(testing, 'proc')]);
  }
}

/**
 * A copy of the project (its package files, steps/, shared/ and test/) with node_modules installed by npm under the
 * Node in `nodeDir` (its bin folder), its native addons built against that Node's own headers: kept in the cache,
 * installed again only when the package files or the patches change; the code is copied afresh each time.
 */
export function projectUnder(nodeDir: string, label: string): { tree: string } | { why: string } {
  const tree = join(cache, `bench-${label}`);
  const stamp = createHash('sha256').update(readFileSync(join(root, 'package.json'))).update(readFileSync(join(root, 'package-lock.json')));
  for (const file of readdirSync(join(root, 'shared', 'patches')).sort()) stamp.update(file).update(readFileSync(join(root, 'shared', 'patches', file)));
  const stamped = stamp.digest('hex');
  for (const folder of ['steps', 'shared', 'test']) {
    rmSync(join(tree, folder), { recursive: true, force: true });
    cpSync(join(root, folder), join(tree, folder), { recursive: true });
  }
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.json']) copyFileSync(join(root, file), join(tree, file));
  if (existsSync(join(tree, 'keys'))) rmSync(join(tree, 'keys'), { recursive: true });
  cpSync(join(root, 'keys'), join(tree, 'keys'), { recursive: true, filter: (path) => !/ssh_host_|\/authorized_keys\//.test(path) });
  const stampFile = join(tree, 'node_modules', '.conch-steps-stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamped) return { tree };
  const installed = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: tree, encoding: 'utf8',
    env: { ...process.env, PATH: `${nodeDir}:${process.env.PATH}`, npm_config_nodedir: dirname(nodeDir) },
  });
  if (installed.status !== 0) return { why: `npm ci under ${label} failed: ${installed.stderr.trim().split('\n').slice(-3).join(' ')}` };
  writeFileSync(stampFile, stamped);
  return { tree };
}
