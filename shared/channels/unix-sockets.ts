// Unix-domain sockets' rules (step 23): where `ssh -R PATH:...` may listen, and which sockets `ssh -L PORT:PATH`
// may reach. The step runs as one system user for all its users, so the system's file permissions cannot tell alice
// from bob: each user gets a folder of their own, and only what is in it (or in FORWARD_TO_SOCKETS) is theirs.
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { explain, fail } from '../core/errors.ts';

/**
 * The folder of the users' socket folders: `SOCKETS_DIR`, else one of this system user's own in the system's
 * temporary folder (short: a socket's path may not be longer than 104 bytes). Made at start, mode 0700; one that
 * another system user owns, or that others may enter, is refused, since whoever can enter it can connect.
 */
export const socketsDir = process.env.SOCKETS_DIR || join(tmpdir(), `conch-steps-sockets-${process.getuid?.() ?? 0}`);
try {
  mkdirSync(socketsDir, { recursive: true, mode: 0o700 });
  const stats = lstatSync(socketsDir);
  if (!stats.isDirectory() || stats.uid !== process.getuid?.() || (stats.mode & 0o077) !== 0) {
    fail(`the folder ${socketsDir} for the users' sockets must be this user's own, mode 0700 (set SOCKETS_DIR to use another)`);
  }
} catch (err) {
  fail(`cannot make the folder ${socketsDir} for the users' sockets: ${explain(err)} (set SOCKETS_DIR to use another)`);
}

/** `FORWARD_TO_SOCKETS`: the sockets any user may reach with `ssh -L`, paths separated by commas (a folder ends in /). */
const forwardTo = (process.env.FORWARD_TO_SOCKETS ?? '').split(',').filter((each) => each !== '').map((each) => {
  if (!isAbsolute(each)) fail(`FORWARD_TO_SOCKETS must be absolute paths separated by commas, not "${each}"`);
  return each.endsWith('/') ? `${resolve(each)}/` : resolve(each);
});

/** The longest path a socket may have: Linux keeps 107 bytes, macOS 103, and a longer one is cut short silently. */
const MAX_PATH = 103;

/** `user`'s own socket folder, `SOCKETS_DIR/USER`, made on first use, mode 0700. */
function userSockets(user: string): string {
  const folder = join(socketsDir, user);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  return folder;
}

/**
 * The path `user`'s `ssh -R PATH:...` listens on: a relative PATH is taken in their own folder; an absolute one must
 * name a file right in it. The name is letters, digits, `.`, `_` and `-`. Returns the path, or why it is refused.
 */
export function socketToListenOn(user: string, asked: string): { path: string } | { refused: string } {
  const folder = userSockets(user);
  const path = resolve(folder, asked);
  if (dirname(path) !== folder || !/^[\w-][\w.-]{0,63}$/.test(path.slice(folder.length + 1))) {
    return { refused: `a socket must be a name (a-z, 0-9, . _ -) in ${folder}/` };
  }
  if (Buffer.byteLength(path) > MAX_PATH) return { refused: `${path} is longer than ${MAX_PATH} bytes` };
  return { path };
}

/**
 * The path `user`'s `ssh -L PORT:PATH` connects to, if they may: one of their own sockets (relative paths are taken
 * in their folder), or one that FORWARD_TO_SOCKETS names. Otherwise undefined.
 */
export function socketToReach(user: string, asked: string): string | undefined {
  if (asked.includes('\0')) return undefined;
  const own = socketToListenOn(user, asked);
  if ('path' in own) return own.path;
  const path = resolve(userSockets(user), asked);
  return forwardTo.some((each) => each === path || (each.endsWith('/') && dirname(path) === each.slice(0, -1)))
    ? path : undefined;
}

/** The paths this process listens on, or is about to: another request for one is refused, whatever is on disk. */
const taken = new Set<string>();

/**
 * Takes `path` to listen on, as OpenSSH's StreamLocalBindUnlink does, but only for what is stale: a socket file that
 * refuses connections (left by a step that was killed) is removed. Refused, with the reason: a path this process has
 * taken already (two requests at once included), one something answers on, one that cannot be tried just now (out
 * of files, say), and a file that is not a socket. A path taken is given back with `socketPathClosed()`.
 */
export async function takeSocketPath(path: string): Promise<string | undefined> {
  if (taken.has(path)) return `${path} is in use`;
  taken.add(path);
  const refused = await staleOrRefused(path);
  if (refused) taken.delete(path);
  return refused;
}

/** Gives back a path `takeSocketPath()` took, once its listener has closed or failed to listen. */
export function socketPathClosed(path: string): void {
  taken.delete(path);
}

async function staleOrRefused(path: string): Promise<string | undefined> {
  const stats = lstatSync(path, { throwIfNoEntry: false });
  if (!stats) return undefined; // nothing there
  if (!stats.isSocket()) return `${path} is there already, and is not a socket`;
  const code = await new Promise<string | undefined>((done) => {
    const probe = connect(path, () => (probe.destroy(), done(undefined)));
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
  // Only a refusal says that nothing listens there; any other failure (EMFILE, EAGAIN: a full queue) says nothing.
  if (code === undefined) return `${path} is in use`;
  if (code !== 'ECONNREFUSED') return `cannot tell whether ${path} is in use (${code})`;
  try {
    unlinkSync(path);
    return undefined;
  } catch (err) {
    return `cannot remove the old ${path}: ${explain(err)}`;
  }
}
