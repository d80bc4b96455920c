// What one user of the git server may keep and run (step 19): repositories, bytes, and git programs at once. Each
// is bounded, as sshd bounds sessions, and a refusal names the bound and the option that sets it.
import { lstat, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { limits } from '../core/options.ts';
import type { Repository } from './git-repositories.ts';

const MiB = 1024 * 1024;

/** The git programs admitted and not yet ended, for each user and in all. */
const running = new Map<string, number>();
let runningAll = 0;
const add = (counts: Map<string, number>, key: string, by: number) => {
  const now = (counts.get(key) ?? 0) + by;
  if (now === 0) counts.delete(key);
  else counts.set(key, now);
};

/** How many times an owner's folder was walked: once every MEASURE_MS at most, whatever the requests (for tests). */
export let walks = 0;
/** How long a measure of an owner's folder stands, at most, for the requests that come together. */
export const MEASURE_MS = 5000;

/** The bytes of the files under an owner's folder, and how many repositories (`NAME.git` folders) it holds. */
async function measure(ownerDir: string): Promise<{ bytes: number; repositories: number }> {
  walks += 1;
  let bytes = 0;
  let repositories = 0;
  // A file at a time, awaited: the walk takes turns with everything else the step does.
  const walk = async (folder: string, depth: number) => {
    let entries;
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch {
      return; // not there yet, or gone meanwhile
    }
    for (const entry of entries) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (depth === 0 && entry.name.endsWith('.git')) repositories += 1;
        await walk(path, depth + 1);
      } else if (entry.isFile()) {
        try {
          bytes += (await lstat(path)).size;
        } catch {} // gone meanwhile
      }
    }
  };
  await walk(ownerDir, 0);
  return { bytes, repositories };
}

/** An owner's last measure, and what was granted since: the bytes pushes may write, the repositories made. */
interface Usage { at: number; measured: Promise<{ bytes: number; repositories: number }>; granted: number; made: number }
const usages = new Map<string, Usage>();

/** An owner's usage: the last measure while it is under MEASURE_MS old (requests meanwhile share it), else a new one. */
function usage(ownerDir: string): Usage {
  const now = Date.now();
  const known = usages.get(ownerDir);
  if (known && now - known.at < MEASURE_MS) return known;
  for (const [dir, old] of usages) if (now - old.at >= MEASURE_MS) usages.delete(dir); // the stale go
  const fresh = { at: now, measured: measure(ownerDir), granted: 0, made: 0 };
  usages.set(ownerDir, fresh);
  return fresh;
}

/**
 * Admits a git program of `user`'s on `repository` (`push`: one that writes; `found`: the repository exists), or says
 * why not: GIT_MAX_RUNNING of theirs, or GIT_MAX_RUNNING_ALL in all, are running; or, for a push, its owner has
 * GIT_MAX_REPOS repositories and this one would be new, or they hold GIT_MAX_DISK MiB. What an owner holds is
 * measured once for all the requests that come together, with what the pushes still running may add (the
 * repositories they make, the bytes they may write: `bound`), and measured again once a push has ended. Admitted, it
 * counts at once, until the function returned is called (once or more).
 */
export async function admit(user: string, repository: Repository, push: boolean, found: boolean):
  Promise<string | ((() => void) & { bound: number })> {
  if ((running.get(user) ?? 0) >= limits.gitMaxRunning) {
    return `${user} runs ${limits.gitMaxRunning} git programs already, the most one user may (GIT_MAX_RUNNING): try again once one ends`;
  }
  if (runningAll >= limits.gitMaxRunningAll) {
    return `this server runs ${limits.gitMaxRunningAll} git programs already (GIT_MAX_RUNNING_ALL): try again soon`;
  }
  const owner = repository.owner;
  const ownerDir = dirname(repository.dir);
  const isNew = push && !found;
  let ended = false;
  let bound = 0;
  const held = push ? usage(ownerDir) : undefined;
  const release = () => {
    if (ended) return;
    ended = true;
    add(running, user, -1);
    runningAll -= 1;
    if (!held) return;
    held.granted -= bound;
    if (isNew) held.made -= 1;
    if (usages.get(ownerDir) === held) usages.delete(ownerDir); // what the push wrote is measured next time
  };
  // Counted before the measure is awaited: requests that come meanwhile see this one.
  add(running, user, 1);
  runningAll += 1;
  if (held) {
    if (isNew) held.made += 1;
    const { bytes, repositories } = await held.measured;
    const had = repositories + held.made - (isNew ? 1 : 0);
    const why = isNew && had >= limits.gitMaxRepos
      ? `${owner} has ${had} repositories, the most one user may have (GIT_MAX_REPOS): remove one first`
      : bytes >= limits.gitMaxDisk * MiB
        ? `${owner}'s repositories hold ${(bytes / MiB).toFixed(0)} MiB, the most one user may keep (GIT_MAX_DISK)`
        : undefined;
    if (why) return (release(), why);
    // The largest pack it may send: GIT_MAX_PUSH MiB, or less, what is left of GIT_MAX_DISK, less what the pushes
    // running may still send (one byte at least: git then refuses any pack).
    bound = Math.max(1, Math.min(limits.gitMaxPush * MiB, limits.gitMaxDisk * MiB - bytes - held.granted));
    held.granted += bound;
  }
  return Object.assign(release, { bound });
}
