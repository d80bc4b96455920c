// Users' public keys: an OpenSSH authorized_keys file for each user, keys/authorized_keys/USERNAME.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { shown } from '../core/errors.ts';
import { decodeOnce } from '../core/key-objects.ts';

const { utils } = ssh2;

// The local type fix for security keys (ssh2 patch part 019), which @types/ssh2 does not know: their verify()
// takes what the token must have done as a fourth argument. shared/login/openssh-certificate.ts uses it too.
declare module 'ssh2' {
  interface ParsedKey {
    verify(data: Buffer | string, signature: Buffer, algo: string | undefined,
      required: { userPresence?: boolean; userVerification?: boolean }): boolean;
  }
}

/** Each file's text when it was last parsed, and the keys parsed from it. */
const parsed = new Map<string, { text: string; keys: ParsedKey[] }>();

/**
 * The public keys that may log in as `username`, read afresh from `SSH_AUTHORIZED_KEYS_DIR/USERNAME` (default
 * `keys/authorized_keys/USERNAME`) so that an edit counts at once; parsed again only when the text has changed.
 * A missing folder or file means no keys. A line that is not a public key is skipped, with a log line naming the
 * file and the line.
 */
export function authorizedKeys(username: string): ParsedKey[] {
  // The user name comes from the client and becomes a file name: nothing that could leave the folder.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(username)) return [];
  const path = authorizedKeysFile(username);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    parsed.delete(path);
    return [];
  }
  const last = parsed.get(path);
  if (last?.text === text) return last.keys;
  const keys: ParsedKey[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    // Before the key, OpenSSH's options for security keys alone: a line with any other option is skipped.
    const [, given = '', keyText = line] = /^((?:(?:no-touch-required|verify-required),?)+)\s+(.*)$/.exec(line) ?? [];
    const options = new Set(given.split(',').filter(Boolean));
    const key = utils.parseKey(keyText);
    if (key instanceof Error || key.isPrivateKey()) {
      console.log(`${shown(path)} line ${index + 1}: skipped, not a public key (of the options before a key, only `
        + 'no-touch-required and verify-required are supported)');
      return;
    }
    keys.push(withRequirements(decodeOnce(key), options));
  });
  parsed.set(path, { text, keys });
  return keys;
}

/**
 * A security key's (`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`) `verify()`, held to its
 * line's options as sshd holds it: the token must have been touched unless the line says `no-touch-required`, and
 * the user verified (a PIN, a fingerprint) when it says `verify-required`. Other keys are returned as they are.
 */
function withRequirements(key: ParsedKey, options: Set<string>): ParsedKey {
  if (!key.type.startsWith('sk-')) return key;
  const requirements = { userPresence: !options.has('no-touch-required'), userVerification: options.has('verify-required') };
  const verify = key.verify.bind(key);
  key.verify = (data: Buffer | string, signature: Buffer, algo?: string) => verify(data, signature, algo, requirements);
  return key;
}

/** Where the user's authorized_keys file is: `SSH_AUTHORIZED_KEYS_DIR/USERNAME`, else `keys/authorized_keys/USERNAME`. */
export function authorizedKeysFile(username: string): string {
  const dir = process.env.SSH_AUTHORIZED_KEYS_DIR || fileURLToPath(new URL('../../keys/authorized_keys/', import.meta.url));
  return join(dir, username);
}
