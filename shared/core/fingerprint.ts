// A key's fingerprint, as OpenSSH prints it: what the log and the steps show for host keys and users' keys.
import { createHash } from 'node:crypto';

/** A public key's fingerprint as OpenSSH shows it: `SHA256:` and the unpadded base64 of the key's SHA-256. */
export function fingerprint(publicKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '')}`;
}
