// The password file, in the format of Twisted's FilePasswordDB: one `username:password` a line.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { explain, fail, shown } from './errors.ts';

export interface Passwords {
  /** True when the file gives this user this password. Takes as long whether the user exists or not. */
  check(username: string, password: string): boolean;
}

/**
 * Reads the password file named by `SSH_PASSWORDS` (default `keys/ssh-passwords`). Blank lines and lines
 * starting with `#` are skipped. A missing or malformed file stops the step, naming the file and the line.
 */
export function readPasswordFile(): Passwords {
  const path = process.env.SSH_PASSWORDS || fileURLToPath(new URL('../keys/ssh-passwords', import.meta.url));
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot read the password file ${shown(path)}: ${explain(err)} (set SSH_PASSWORDS to use another file)`);
  }

  const digests = new Map<string, Buffer>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (line === '' || line.trimStart().startsWith('#')) return;
    const where = `${shown(path)} line ${index + 1}`;
    const colon = line.indexOf(':');
    if (colon === -1) fail(`${where}: expected username:password, found no ":"`);
    const username = line.slice(0, colon);
    if (username === '') fail(`${where}: the username before ":" is empty`);
    if (colon === line.length - 1) fail(`${where}: the password after ":" is empty`);
    if (digests.has(username)) fail(`${where}: user "${username}" is listed twice`);
    digests.set(username, digest(line.slice(colon + 1)));
  });

  // Compare fixed-size digests with timingSafeEqual: no early exit on the first differing byte, and no hint of
  // the password's length. An unknown user is compared against a digest too, so it takes just as long.
  const nobody = digest('');
  return {
    check(username, password) {
      const expected = digests.get(username);
      const same = timingSafeEqual(digest(password), expected ?? nobody);
      return same && expected !== undefined;
    },
  };
}

function digest(password: string): Buffer {
  return createHash('sha256').update(password, 'utf8').digest();
}
