// Step 22's names: who owns which tunnel name. The first user to bind a name owns it, and keeps it across restarts:
// TUNNEL_NAMES (default keys/tunnel-names) holds a line `NAME OWNER` for each, written as names are taken.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { explain, fail, shown } from '../core/errors.ts';

/** The file of names and their owners: `TUNNEL_NAMES`, else `keys/tunnel-names` (git ignores it). */
export const namesFile = process.env.TUNNEL_NAMES || fileURLToPath(new URL('../../keys/tunnel-names', import.meta.url));
/** Who may reach which alias besides its owner: `TUNNEL_ACCESS`, else `keys/tunnel-access`, a line `NAME USER...` each. */
export const accessFile = process.env.TUNNEL_ACCESS || fileURLToPath(new URL('../../keys/tunnel-access', import.meta.url));
/** The most names one user may own. */
export const NAMES_PER_USER = 10;
/** A name: a DNS label, in lowercase (letters, digits and hyphens, at most 63, no hyphen first or last). */
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Each name's owner, read at start. A line that is not `NAME OWNER` stops the step, naming the file and line. */
const owners = new Map<string, string>();
if (existsSync(namesFile)) {
  readFileSync(namesFile, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim() || line.startsWith('#')) return;
    const [name, owner, ...rest] = line.trim().split(/\s+/);
    if (!NAME.test(name!) || !owner || rest.length) fail(`${shown(namesFile)}, line ${i + 1}: expected NAME OWNER, not "${line}"`);
    owners.set(name!, owner!);
  });
}

/** What a `tcpip-forward` request asks for: a name, whether it was made up, and a password for its visitors. */
export interface Asked { name: string; generated: boolean; credentials?: string }

/**
 * What a `tcpip-forward` request asks for, read from its address: `alice-app` as it is, in lowercase; `localhost`
 * or nothing (`ssh -R 80:localhost:3000`) asks for a new name, which `taken` must not already hold; and
 * `USER:PASSWORD@alice-app` (`ssh -R '[USER:PASSWORD@alice-app]:80:...'`: the brackets keep OpenSSH from reading
 * its colons) asks visitors for that user and password too. Undefined when the address is not a name.
 */
export function asked(bindAddr: string, taken: (name: string) => boolean): Asked | undefined {
  const match = /^(?:([^:@]+:[^@]*)@)?([^@]*)$/.exec(bindAddr); // an @ without a user and password is no name
  if (!match || (match[1]?.length ?? 0) > 200) return undefined;
  const [, credentials, rest = ''] = match;
  const name = rest.toLowerCase();
  // (A name of xn--, punycode, could be made to look like another's in a browser's address bar.)
  if (name !== '' && name !== 'localhost') return NAME.test(name) && !name.startsWith('xn--') ? { name, generated: false, credentials } : undefined;
  for (;;) {
    // Eight letters and digits, which no one owns and no tunnel uses: a name of this connection's alone.
    const made = randomBytes(5).toString('hex').slice(0, 8).replace(/^[0-9]/, 'x');
    if (!owners.has(made) && !taken(made)) return { name: made, generated: true, credentials };
  }
}

/** Whether someone owns `name`: then a request for it while no tunnel has it is the tunnel gone, not a wrong name. */
export function owned(name: string): boolean {
  return owners.has(name);
}

/**
 * Whether `user` may bind `name`: a name nobody owns becomes theirs (and is written to the file), unless they own
 * NAMES_PER_USER already. Resolves with why not, or undefined when they may.
 */
export function claim(name: string, user: string, generated: boolean): string | undefined {
  const owner = owners.get(name);
  if (owner === user || generated) return undefined; // a generated name is nobody's: it ends with its tunnel
  if (owner) return `the name ${name} belongs to another user`;
  if ([...owners.values()].filter((each) => each === user).length >= NAMES_PER_USER) {
    return `you own ${NAMES_PER_USER} names already`;
  }
  owners.set(name, user);
  try {
    // Written whole, then put in place: a step stopped halfway leaves the old file, never half of one.
    writeFileSync(`${namesFile}.new`, [...owners].map(([each, who]) => `${each} ${who}\n`).join(''), { mode: 0o600 });
    renameSync(`${namesFile}.new`, namesFile);
  } catch (err) {
    owners.delete(name);
    return `the names file cannot be written (${explain(err)})`;
  }
  return undefined;
}

/**
 * Whether `user` may reach the TCP alias `name` (`ssh -R NAME:5432:...`) of `owner` with `ssh -L`: its owner may, and
 * those its line in the access file names (`db bob carol`), read as each is asked, so that an edit counts at once.
 */
export function mayReach(user: string, name: string, owner: string): boolean {
  if (user === owner) return true;
  let text = '';
  try {
    text = readFileSync(accessFile, 'utf8');
  } catch {} // no file: the owners alone
  return text.split('\n').some((line) => {
    const [each, ...users] = line.trim().split(/\s+/);
    return each === name && users.includes(user);
  });
}
