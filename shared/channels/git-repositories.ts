// The git server's repositories (step 19): the exec requests git makes, where each repository lies, and who may
// read or push it.
import { execFile } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { explain, fail, shown } from '../core/errors.ts';

const run = promisify(execFile);

/** Where the repositories are: `GIT_REPOS_DIR`, else `repos/` beside `steps/` (git ignores it); made at start. */
const reposDir = process.env.GIT_REPOS_DIR || fileURLToPath(new URL('../../repos/', import.meta.url));
try {
  mkdirSync(reposDir, { recursive: true, mode: 0o700 });
} catch (err) {
  fail(`cannot make the folder ${shown(reposDir)} for the repositories: ${explain(err)} (set GIT_REPOS_DIR to use another)`);
}
const reposRoot = realpathSync(reposDir);

/** Who may read and push what: `GIT_ACCESS`, else `keys/git-access`. */
export const accessFile = process.env.GIT_ACCESS || fileURLToPath(new URL('../../keys/git-access', import.meta.url));

/** The three programs git runs on a server, and whether each one writes to the repository. */
const SERVICES = { 'git-upload-pack': false, 'git-upload-archive': false, 'git-receive-pack': true } as const;
export type Service = keyof typeof SERVICES;

/** A repository's name, `OWNER/NAME.git`, and its folder. */
export interface Repository { owner: string; name: string; dir: string }

/** A plain name: letters, digits, `_`, `.` and `-`, not starting with `.` or `-` (so never `..` or `-x`). */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Reads the command line git sends for `git clone`, `fetch`, `push` and `archive --remote`: a service and one path
 * in single quotes, quoted as git quotes it (`'` is sent as `'\''` and `!` as `'\!'`), and nothing else: no
 * second argument, no shell syntax. The path is `OWNER/NAME.git`, with a `/` in front for an `ssh://` URL.
 */
export function gitRequest(command: string): { service: Service; repository: Repository } | { error: string } {
  const match = /^(git-[a-z-]+) '((?:[^'!]|'\\[!']')*)'$/.exec(command);
  const service = match?.[1];
  if (!match || !service || !Object.hasOwn(SERVICES, service)) {
    return { error: 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path' };
  }
  const path = match[2]!.replace(/'\\([!'])'/g, '$1');
  const [owner, name, ...more] = path.replace(/^\//, '').split('/');
  if (more.length || !owner || !name || !NAME.test(owner) || !NAME.test(name) || !/.\.git$/.test(name)) {
    return { error: `${JSON.stringify(path)} is not a repository's name: they are OWNER/NAME.git` };
  }
  return { service: service as Service, repository: { owner, name, dir: join(reposRoot, owner, name) } };
}

/** Whether `service` writes to the repository (`git-receive-pack`, for a push). */
export function writes(service: Service): boolean {
  return SERVICES[service];
}

/**
 * Whether the repository exists: its folder and its owner's are real folders in `GIT_REPOS_DIR`. A symbolic link
 * in their place (put there by hand: no request can make one) counts as no repository, so none leads out.
 */
export function exists(repository: Repository): boolean {
  const isFolder = (path: string) => {
    try {
      return lstatSync(path).isDirectory();
    } catch {
      return false;
    }
  };
  return isFolder(join(reposRoot, repository.owner)) && isFolder(repository.dir)
    && realpathSync(repository.dir) === repository.dir;
}

/** Makes an empty bare repository (`git init --bare`, without the sample hooks of git's template). */
export async function create(repository: Repository): Promise<void> {
  mkdirSync(join(reposRoot, repository.owner), { recursive: true, mode: 0o700 });
  await run('git', ['init', '--quiet', '--bare', '--template=', repository.dir]);
}

/**
 * After a push: when the repository's HEAD names a branch that does not exist (a new repository's `master`, when
 * `main` was pushed), points it at `main`, else `master`, else the first branch, so that a clone checks it out.
 */
export async function pointHeadAtABranch(repository: Repository): Promise<void> {
  const git = (...args: string[]) => run('git', ['-C', repository.dir, ...args]);
  if (await git('rev-parse', '--quiet', '--verify', 'HEAD').then(() => true, () => false)) return;
  const { stdout } = await git('for-each-ref', '--format=%(refname)', 'refs/heads/');
  const branches = stdout.split('\n').filter((ref) => ref !== '');
  const branch = ['refs/heads/main', 'refs/heads/master'].find((ref) => branches.includes(ref)) ?? branches[0];
  if (branch) await git('symbolic-ref', 'HEAD', branch);
}

/**
 * What `user` may do with the repository: its owner and its collaborators read and push; anyone reads it when it
 * is public. The access file is read afresh for each request, so an edit counts at once: one line a repository,
 * `OWNER/NAME.git` and then words, each `public` or a collaborator's user name; blank lines and `#` lines are
 * skipped, and a line that is not of that form too, with a log line naming the file and the line.
 */
export function access(user: string, repository: Repository): 'push' | 'read' | 'none' {
  if (user === repository.owner) return 'push';
  let text = '';
  try {
    text = readFileSync(accessFile, 'utf8');
  } catch {
    return 'none'; // no file: every repository is its owner's alone
  }
  let may: 'push' | 'read' | 'none' = 'none';
  text.split('\n').forEach((raw, index) => {
    const [repo, ...who] = raw.trim().split(/\s+/);
    if (!repo || repo.startsWith('#')) return;
    const [owner, name, ...more] = repo.split('/');
    if (more.length || !owner || !name || !NAME.test(owner) || !NAME.test(name) || !name.endsWith('.git')
      || !who.every((word) => NAME.test(word))) {
      console.log(`${shown(accessFile)} line ${index + 1}: skipped, not OWNER/NAME.git followed by public or user names`);
      return;
    }
    if (owner !== repository.owner || name !== repository.name) return;
    if (who.includes(user)) may = 'push';
    else if (who.includes('public') && may === 'none') may = 'read';
  });
  return may;
}
