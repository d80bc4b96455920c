// What one user of the git server may keep and run (step 19): repositories, bytes, and git programs at once. Each
// is bounded, as sshd bounds sessions, and a refusal names the bound and the option that sets it.
import { lstatSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { limits } from '../core/options.ts';
import type { Repository } from './git-repositories.ts';

const MiB = 1024 * 1024;

/** The git programs running, for each user and in all. */
const running = new Map<string, number>();
let runningAll = 0;

/** The bytes of the files under an owner's folder, and how many repositories (`NAME.git` folders) it holds. */
function measure(ownerDir: string): { bytes: number; repositories: number } {
  let bytes = 0;
  let repositories = 0;
  const walk = (folder: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch {
      return; // not there yet, or gone meanwhile
    }
    for (const entry of entries) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (depth === 0 && entry.name.endsWith('.git')) repositories += 1;
        walk(path, depth + 1);
      } else if (entry.isFile()) {
        try {
          bytes += lstatSync(path).size;
        } catch {} // gone meanwhile
      }
    }
  };
  walk(ownerDir, 0);
  return { bytes, repositories };
}

/**
 * Why `user` may not run a git program on `repository` now (`push`: one that writes; `found`: the repository
 * exists), or undefined if they may: GIT_MAX_RUNNING of theirs, or GIT_MAX_RUNNING_ALL in all, are running; or, for
 * a push, its owner has GIT_MAX_REPOS repositories and this one would be new, or they hold GIT_MAX_DISK MiB.
 */
export function quotaRefusal(user: string, repository: Repository, push: boolean, found: boolean): string | undefined {
  if ((running.get(user) ?? 0) >= limits.gitMaxRunning) {
    return `${user} runs ${limits.gitMaxRunning} git programs already, the most one user may (GIT_MAX_RUNNING): try again once one ends`;
  }
  if (runningAll >= limits.gitMaxRunningAll) {
    return `this server runs ${limits.gitMaxRunningAll} git programs already (GIT_MAX_RUNNING_ALL): try again soon`;
  }
  if (!push) return undefined;
  const { bytes, repositories } = measure(dirname(repository.dir));
  const owner = repository.owner;
  if (!found && repositories >= limits.gitMaxRepos) {
    return `${owner} has ${repositories} repositories, the most one user may have (GIT_MAX_REPOS): remove one first`;
  }
  if (bytes >= limits.gitMaxDisk * MiB) {
    return `${owner}'s repositories hold ${(bytes / MiB).toFixed(0)} MiB, the most one user may keep (GIT_MAX_DISK)`;
  }
  return undefined;
}

/** The largest pack a push to `repository` may send now, in bytes: GIT_MAX_PUSH MiB, or less, what is left of its owner's GIT_MAX_DISK. */
export function pushBound(repository: Repository): number {
  const left = limits.gitMaxDisk * MiB - measure(dirname(repository.dir)).bytes;
  return Math.max(1, Math.min(limits.gitMaxPush * MiB, left));
}

/** Counts a git program of `user`'s as running, until the function it returns is called (once or more). */
export function started(user: string): () => void {
  running.set(user, (running.get(user) ?? 0) + 1);
  runningAll += 1;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    runningAll -= 1;
    const left = running.get(user)! - 1;
    if (left === 0) running.delete(user);
    else running.set(user, left);
  };
}
