// Logging in with a key (step 09 teaches it, and keeps its own copy): for the steps after it that only need it
// done, step 10 first.
import type { ClientInfo, PublicKeyAuthContext } from 'ssh2';
import { fingerprint } from '../core/fingerprint.ts';
import { authorizedKeys } from './authorized-keys.ts';
import { log } from '../core/log.ts';

/**
 * Whether the offered key is listed in the user's `authorized_keys` and, once the client has signed, whether the
 * signature holds. RSA must sign with SHA-2. A refused key is logged with the reason, which the client is not told.
 */
export function keyMayLogIn(ctx: PublicKeyAuthContext, info: ClientInfo): boolean {
  const refuse = (why: string) => {
    log(info, `key ${fingerprint(ctx.key.data)} refused for ${ctx.username}: ${why}`);
    return false;
  };
  const listed = authorizedKeys(ctx.username);
  const key = listed.find((each) => each.getPublicSSH().equals(ctx.key.data));
  if (!key) return refuse(listed.length ? 'not in the user\'s authorized_keys' : 'the user has no authorized_keys');
  if (key.type === 'ssh-rsa' && ctx.hashAlgo !== 'sha256' && ctx.hashAlgo !== 'sha512') {
    return refuse('an RSA signature with SHA-1');
  }
  if (!ctx.signature || !ctx.blob) return true;
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true || refuse('the signature does not hold');
}
