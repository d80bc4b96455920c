// SFTP's numbers and formats in Node's terms (step 12): open flags, attributes, `ls -l` lines, error statuses.
import { constants, type Stats } from 'node:fs';
import ssh2 from 'ssh2';
import type { Attributes } from 'ssh2';
import { Refused } from './user-folder.ts';

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;
const { O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } = constants;

/** SFTP's open flags as the file system's, and never through a link or waiting on a pipe someone left there. */
export function openFlags(flags: number): number {
  const both = OPEN_MODE.READ | OPEN_MODE.WRITE;
  return ((flags & both) === both ? O_RDWR : flags & OPEN_MODE.WRITE ? O_WRONLY : O_RDONLY)
    | (flags & OPEN_MODE.APPEND ? O_APPEND : 0) | (flags & OPEN_MODE.CREAT ? O_CREAT : 0)
    | (flags & OPEN_MODE.TRUNC ? O_TRUNC : 0) | (flags & OPEN_MODE.EXCL ? O_EXCL : 0) | O_NOFOLLOW | O_NONBLOCK;
}

/**
 * The permissions a file or folder may be made with, or changed to: `mode` (else `fallback`) with a umask of 022, and
 * never setuid, setgid or sticky. The step runs as its own user, not as the client's: a setuid file that a client
 * left would run as the step's user for anyone who can reach it. (OpenSSH's sftp-server runs as the client's user.)
 */
export function permitted(mode: number | undefined, fallback: number): number {
  return (mode ?? fallback) & 0o755;
}

/** A file's attributes as SFTP sends them: type and permissions, owner, size, and times in seconds. */
export function attrsOf(stats: Stats): Attributes {
  const { mode, uid, gid, size } = stats;
  return { mode, uid, gid, size, atime: Math.floor(stats.atimeMs / 1000), mtime: Math.floor(stats.mtimeMs / 1000) };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The line `ls -l` shows for a file, as OpenSSH's sftp-server writes it (`sftp`'s `ls -l` prints it as it is):
 * `-rw-r--r--    1 alice    alice          25 Nov 27 07:15 hello.txt`. The owner shown is the user logged in.
 */
export function longname(name: string, stats: Stats, user: string): string {
  const type = stats.isDirectory() ? 'd' : stats.isSymbolicLink() ? 'l' : stats.isFile() ? '-' : '?';
  const rwx = [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((c, i) => ((stats.mode >> shift) & (4 >> i) ? c : '-')));
  const date = stats.mtime;
  const recent = Math.abs(Date.now() - date.getTime()) < 182 * 24 * 3600 * 1000;
  const time = `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
  const day = `${MONTHS[date.getMonth()]} ${String(date.getDate()).padStart(2)}`;
  const when = recent ? `${day} ${time}` : `${day}  ${date.getFullYear()}`;
  return `${type}${rwx.flat().join('')} ${String(stats.nlink).padStart(4)} ${user.padEnd(8)} ${user.padEnd(8)} `
    + `${String(stats.size).padStart(8)} ${when} ${name}`;
}

const FAILURES: Record<string, string> = {
  EEXIST: 'File exists',
  ENOTEMPTY: 'Directory not empty',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ENOSPC: 'No space left on device',
  EINVAL: 'Invalid argument',
};

/**
 * The SFTP status for an error, with a message `sftp` prints. Never the error's own message: that names paths on
 * the server, which the client has no business knowing.
 */
export function statusOf(err: unknown): [code: number, message: string] {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (err instanceof Refused || code === 'EACCES' || code === 'EPERM' || code === 'ELOOP') {
    return [STATUS_CODE.PERMISSION_DENIED, 'Permission denied'];
  }
  if (code === 'ENOENT') return [STATUS_CODE.NO_SUCH_FILE, 'No such file'];
  return [STATUS_CODE.FAILURE, FAILURES[code] ?? 'Failure'];
}
