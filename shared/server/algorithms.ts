// Which algorithms the server offers: only those that a current audit (ssh-audit) accepts and current clients
// (OpenSSH, PuTTY, Dropbear) support. ssh2's defaults also offer NIST curves, SHA-1 and encrypt-and-MAC modes.
import { createRequire } from 'node:module';
import type { Algorithms, CipherAlgorithm, KexAlgorithm, MacAlgorithm } from 'ssh2';

/** The post-quantum hybrid that shared/patches/ adds to ssh2, a name @types/ssh2 does not know yet. */
const MLKEM768_X25519 = 'mlkem768x25519-sha256' as KexAlgorithm;

/** What we would offer, best first, on a runtime that has everything. */
const wanted: { kex: KexAlgorithm[]; cipher: CipherAlgorithm[]; hmac: MacAlgorithm[] } = {
  kex: [
    // Post-quantum hybrid: ML-KEM-768 with X25519 (OpenSSH 10's default), added to ssh2 by shared/patches/.
    // OpenSSH 10.1 and later warn on every connection that uses none.
    MLKEM768_X25519,
    // The same curve under two names. Dropbear's client (2022.83) hangs when the server's first choice equals
    // its own, curve25519-sha256, and it believes it guessed the key exchange in advance; this order avoids that.
    'curve25519-sha256@libssh.org',
    'curve25519-sha256',
    // No finite-field Diffie-Hellman: a client can ask for an 8192-bit exchange that costs the server far more
    // work than it costs the client. Every current client speaks Curve25519.
  ],
  cipher: [
    'chacha20-poly1305@openssh.com',
    'aes256-gcm@openssh.com',
    'aes128-gcm@openssh.com',
    'aes256-ctr',
    'aes192-ctr',
    'aes128-ctr',
  ],
  // Only encrypt-then-MAC. (With the AEAD ciphers above, chacha20 and GCM, no separate MAC is used at all.)
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com'],
};

// ssh2 checks, as it loads, which of its algorithms the runtime's crypto can do (Bun has no ChaCha20-Poly1305),
// and stops with an error when asked for another. So what the runtime lacks is left out, and the log says so.
const ssh2Supports = createRequire(import.meta.url)('ssh2/lib/protocol/constants.js') as
  { SUPPORTED_KEX: string[]; SUPPORTED_CIPHER: string[]; SUPPORTED_MAC: string[] };
function available<T extends string>(names: T[], supported: string[]): T[] {
  for (const name of names.filter((name) => !supported.includes(name))) {
    console.log(`this runtime cannot do ${name}: not offered`);
  }
  return names.filter((name) => supported.includes(name));
}

/**
 * The public key algorithms a login may sign with (shared/login/ssh-keys.ts reads these keys; RSA with SHA-1,
 * `ssh-rsa`, is refused, and DSA read nowhere): the server names them to the client in its extension info,
 * `server-sig-algs` (RFC 8308; shared/patches/ part 024), so that the client signs with one of them: security keys
 * (PROTOCOL.u2f) and certificates (PROTOCOL.certkeys, step 15) of each too.
 */
const keyAlgorithms = ['ssh-ed25519', 'sk-ssh-ed25519@openssh.com', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521', 'sk-ecdsa-sha2-nistp256@openssh.com', 'rsa-sha2-512', 'rsa-sha2-256'];
/** A key algorithm's certificate algorithm: `ssh-ed25519-cert-v01@openssh.com`, `sk-ssh-ed25519-cert-v01@openssh.com`. */
const certificate = (name: string) => name.replace(/(@openssh\.com)?$/, '-cert-v01@openssh.com');

/** The `algorithms` to give `new Server()`. ssh2 adds strict key exchange (the fix for Terrapin) by itself. */
export const algorithms: Algorithms & { serverSigAlgs: string[] } = {
  kex: available(wanted.kex, ssh2Supports.SUPPORTED_KEX),
  serverHostKey: ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256'],
  cipher: available(wanted.cipher, ssh2Supports.SUPPORTED_CIPHER),
  hmac: available(wanted.hmac, ssh2Supports.SUPPORTED_MAC),
  // No compression. Inflating what a client sends has no bound in ssh2 (a packet may grow some thirty times), and
  // on today's links it saves little; OpenSSH's `ssh -C` then simply goes without.
  compress: ['none'],
  serverSigAlgs: [...keyAlgorithms, ...keyAlgorithms.map(certificate)],
};
