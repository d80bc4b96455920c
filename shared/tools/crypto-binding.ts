// ssh2's optional C++ binding gives it AES-GCM and ChaCha20-Poly1305 without a cipher object a packet. node-gyp
// builds it for the Node that runs npm, against the headers that npm's `nodedir` names. Where that setting names
// another Node's headers (Debian's npm says nodedir=/usr, Node 20's), a project installed under Node 26 gets a
// binding that does not load there: ssh2 goes on without it, silently, and its ciphers cost two to five times as
// much. `npm install` runs this once the patches apply (postinstall): when the binding does not load in this Node,
// it is rebuilt once, against this Node's own headers when they are beside it. It ends with a line that says which.
// Usage: tsx shared/tools/crypto-binding.ts [PROJECT] (this project's folder unless given).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Why the binding of the ssh2 in `project`'s node_modules does not load in `node`, or undefined when it loads. */
export function bindingProblem(project: string, node = process.execPath): string | undefined {
  const binding = join(project, 'node_modules', 'ssh2', 'lib', 'protocol', 'crypto', 'build', 'Release', 'sshcrypto.node');
  if (!existsSync(binding)) return 'it was not built';
  // In a process of its own: a binding that failed to load may stay half-loaded in this one.
  const loaded = spawnSync(node, ['-e', `require(${JSON.stringify(binding)})`], { encoding: 'utf8' });
  return loaded.status === 0 ? undefined : loaded.stderr.split('\n').find((line) => /Error/.test(line))?.trim() ?? 'it does not load';
}

/** This Node's own headers (the folder to give node-gyp as nodedir), when they are beside it and of its version. */
function ownHeaders(): string | undefined {
  const prefix = dirname(dirname(process.execPath));
  const version = join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(version)) return undefined;
  const major = /#define NODE_MAJOR_VERSION (\d+)/.exec(readFileSync(version, 'utf8'))?.[1];
  return major === process.versions.node.split('.')[0] ? prefix : undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const project = resolve(process.argv[2] ?? fileURLToPath(new URL('../..', import.meta.url)));
  let problem = bindingProblem(project);
  if (problem) {
    const nodedir = ownHeaders();
    console.log(`ssh2's crypto binding does not load in Node ${process.version} (${problem}): rebuilding it${nodedir ? ` against ${nodedir}` : ''}`);
    spawnSync('npm', ['rebuild', 'ssh2'], { cwd: project, stdio: 'inherit',
      env: nodedir ? { ...process.env, npm_config_nodedir: nodedir } : process.env });
    problem = bindingProblem(project);
  }
  console.log(problem ? `ssh2 goes on without its crypto binding in Node ${process.version} (${problem}): its ciphers are slower`
    : `ssh2's crypto binding loads in Node ${process.version}`);
}
