// The host keys of the servers a step logs in to in its turn (step 20's inner server), in OpenSSH's known_hosts
// format, as `ssh-keyscan` prints them: a server whose key is not listed is not logged in to.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { explain, shown } from '../core/errors.ts';

/** The known hosts file: `KNOWN_HOSTS`, else `keys/known_hosts`. */
export const knownHostsFile = process.env.KNOWN_HOSTS || fileURLToPath(new URL('../../keys/known_hosts', import.meta.url));

/** How a known_hosts line names a server: `host`, or `[host]:port` on a port other than 22. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether one pattern of a line names `name`: plain (with * and ?), or hashed (`|1|salt|hash`, ssh-keygen -H). */
function names(pattern: string, name: string): boolean {
  const hashed = /^\|1\|([^|]+)\|([^|]+)$/.exec(pattern);
  if (hashed) return createHmac('sha1', Buffer.from(hashed[1]!, 'base64')).update(name).digest('base64') === hashed[2];
  const glob = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${glob}$`, 'i').test(name);
}

/**
 * Why the server at `host`:`port` may not be logged in to with the host key `key` (as SSH sends it), or undefined
 * when the known hosts file, read afresh, lists that key for it and no `@revoked` line names the key.
 */
export function hostKeyProblem(host: string, port: number, key: Buffer): string | undefined {
  const name = knownHostName(host, port);
  let text: string;
  try {
    text = readFileSync(knownHostsFile, 'utf8');
  } catch (err) {
    return `cannot read the known hosts file ${shown(knownHostsFile)}: ${explain(err)}`;
  }
  let named = false; // some line names the server
  let listed = false; // with this key
  for (const raw of text.split('\n')) {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === '' || fields[0]!.startsWith('#')) continue;
    const marker = fields[0]!.startsWith('@') ? fields.shift() : undefined;
    const [patterns = '', , blob = ''] = fields;
    const sameKey = Buffer.from(blob, 'base64').equals(key);
    if (marker === '@revoked' && sameKey) return `the host key of ${name} is revoked in ${shown(knownHostsFile)}`;
    if (marker) continue; // @cert-authority: host certificates are not taken here
    const each = patterns.split(',');
    if (each.some((p) => p.startsWith('!') && names(p.slice(1), name))) continue;
    if (!each.some((p) => names(p, name))) continue;
    named = true;
    listed ||= sameKey;
  }
  if (listed) return undefined;
  return named ? `the host key of ${name} is not the one in ${shown(knownHostsFile)}: refused`
    : `${name} is not in the known hosts file ${shown(knownHostsFile)} (add it with ssh-keyscan)`;
}
