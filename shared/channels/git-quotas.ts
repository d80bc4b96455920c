// What one user of the git server may keep and run (step 19): repositories, bytes, and git programs at once. Each
// is bounded, as sshd bounds sessions, and a refusal names the bound and the option that sets it.
import { lstatSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { limits } from '../core/options.ts';
import type { Repository } from './git-repositories.ts';

const MiB = 1024 * 1024;

/** The git programs admitted and not yet ended, for each user and in all, and the new repositories among them, for each owner. */
const running = new Map<string, number>();
let runningAll = 0;
const making = new Map<string, number>();
const add = (counts: Map<string, number>, key: string, by: number) => {
  const now = (counts.get(key) ?? 0) + by;
  if (now === 0) counts.delete(key);
  else counts.set(key, now);
};

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
 * Admits a git program of `user`'s on `repository` (`push`: one that writes; `found`: the repository exists), or says
 * why not: GIT_MAX_RUNNING of theirs, or GIT_MAX_RUNNING_ALL in all, are running; or, for a push, its owner has
 * GIT_MAX_REPOS repositories (those being made count) and this one would be new, or they hold GIT_MAX_DISK MiB.
 * Admitted, it counts at once, so that requests that come together are counted together, until the function
 * returned is called (once or more).
 */
export function admit(user: string, repository: Repository, push: boolean, found: boolean): string | (() => void) {
  if ((running.get(user) ?? 0) >= limits.gitMaxRunning) {
    return `${user} runs ${limits.gitMaxRunning} git programs already, the most one user may (GIT_MAX_RUNNING): try again once one ends`;
  }
  if (runningAll >= limits.gitMaxRunningAll) {
    return `this server runs ${limits.gitMaxRunningAll} git programs already (GIT_MAX_RUNNING_ALL): try again soon`;
  }
  const owner = repository.owner;
  const isNew = push && !found;
  if (push) {
    const { bytes, repositories } = measure(dirname(repository.dir));
    if (isNew && repositories + (making.get(owner) ?? 0) >= limits.gitMaxRepos) {
      return `${owner} has ${repositories} repositories, the most one user may have (GIT_MAX_REPOS): remove one first`;
    }
    if (bytes >= limits.gitMaxDisk * MiB) {
      return `${owner}'s repositories hold ${(bytes / MiB).toFixed(0)} MiB, the most one user may keep (GIT_MAX_DISK)`;
    }
  }
  add(running, user, 1);
  runningAll += 1;
  if (isNew) add(making, owner, 1);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    add(running, user, -1);
    runningAll -= 1;
    if (isNew) add(making, owner, -1);
  };
}

/** The largest pack a push to `repository` may send now, in bytes: GIT_MAX_PUSH MiB, or less, what is left of its owner's GIT_MAX_DISK. */
export function pushBound(repository: Repository): number {
  const left = limits.gitMaxDisk * MiB - measure(dirname(repository.dir)).bytes;
  return Math.max(1, Math.min(limits.gitMaxPush * MiB, left));
}
