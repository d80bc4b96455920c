// Each user's own folder (step 12), and the paths inside it that no request can leave.
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { constants, lstat, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { explain, fail, shown } from '../core/errors.ts';

const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY } = constants;

/** A request for a path outside the user's folder, or through a symbolic link: answered "permission denied". */
export class Refused extends Error {}

/** Where the users' folders are: `SFTP_HOME`, else `home/` beside `steps/` (git ignores it); made at start. */
const home = process.env.SFTP_HOME || fileURLToPath(new URL('../../home/', import.meta.url));
try {
  mkdirSync(home, { recursive: true, mode: 0o700 });
} catch (err) {
  fail(`cannot make the folder ${shown(home)} for the users' files: ${explain(err)} (set SFTP_HOME to use another)`);
}

/**
 * The folder of `user` in `SFTP_HOME`, made on first use, readable by this process's user alone (mode 0700). A user
 * name was checked by the login; one that is not a plain file name is refused all the same.
 */
export function userFolder(user: string): string {
  if (!/^[\w.-]+$/.test(user) || user === '.' || user === '..') throw new Refused(`no folder for the user ${user}`);
  mkdirSync(join(home, user), { recursive: true, mode: 0o700 });
  return realpathSync(join(home, user));
}

/**
 * A client's path as the client sees it from now on: `/` is the user's folder, a relative path starts there, and
 * `.` and `..` are resolved. `..` above `/` would leave the folder: refused. So is a NUL byte.
 */
export function canonical(path: string): string {
  if (path.includes('\0')) throw new Refused('a NUL byte in the path');
  const names: string[] = [];
  for (const name of path.split('/')) {
    if (name === '' || name === '.') continue;
    if (name === '..' && names.pop() === undefined) throw new Refused('".." above the folder');
    if (name !== '..') names.push(name);
  }
  return `/${names.join('/')}`;
}

// Linux names an open folder /proc/self/fd/N: a name looked up there is looked up in that folder, whatever has been
// renamed since it was opened. Elsewhere, the folder's path has to do, which a rename at the wrong moment can change.
const viaOpenFolders = existsSync('/proc/self/fd');

/** `name` in the open folder `dir`, whose path is `dirPath`. */
export function inFolder(dir: FileHandle, dirPath: string, name: string): string {
  return viaOpenFolders ? `/proc/self/fd/${dir.fd}/${name}` : join(dirPath, name);
}

/** `err` as it stands, or a refusal when `path` is a symbolic link (an O_NOFOLLOW open fails on one). */
export async function refusedIfLink(path: string, err: unknown): Promise<unknown> {
  const stats = await lstat(path).catch(() => undefined);
  return stats?.isSymbolicLink() ? new Refused('a symbolic link') : err;
}

/**
 * Reaches `path` in the user's folder `root` without following a symbolic link on the way: each folder is opened
 * in turn from the top, and one that is a link is refused. Resolves with a path for the last name (the folder
 * itself for `/`), to be used with calls that do not follow a link there either (lstat, an O_NOFOLLOW open, unlink,
 * rmdir, mkdir, rename), and `done()`, which closes the last folder.
 */
export async function reach(root: string, path: string): Promise<{ path: string; done: () => Promise<void> }> {
  const names = canonical(path).split('/').filter((name) => name !== '');
  let dir = await open(root, O_RDONLY | O_DIRECTORY);
  let dirPath = root;
  try {
    for (const name of names.slice(0, -1)) {
      const next = inFolder(dir, dirPath, name);
      const opened = await open(next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch(async (err) => {
        throw await refusedIfLink(next, err);
      });
      await dir.close();
      [dir, dirPath] = [opened, join(dirPath, name)];
    }
  } catch (err) {
    await dir.close();
    throw err;
  }
  const last = names.at(-1);
  return { path: last === undefined ? root : inFolder(dir, dirPath, last), done: () => dir.close() };
}
