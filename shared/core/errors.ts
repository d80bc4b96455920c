// How a step stops when the reader's set-up is wrong: one line that says what to fix, never a stack trace.

/** Prints `error: MESSAGE` on standard error and ends the step with exit status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

/** Says what a Node.js file or socket error means in a few words (`no such file`, not `ENOENT`). */
export function explain(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EISDIR': return 'it is a folder, not a file';
    case 'ENOTDIR': return 'a part of the path is not a folder';
    default: return err instanceof Error ? err.message : String(err);
  }
}

/** A path as the reader would type it: relative to the current folder when it lies below it. */
export function shown(path: string): string {
  const cwd = process.cwd();
  return path.startsWith(`${cwd}/`) ? path.slice(cwd.length + 1) : path;
}
