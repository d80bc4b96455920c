// Keys that sign and verify without parsing themselves again each time.
//
// ssh2 1.17 keeps each parsed key as PEM text and hands that text to node:crypto for every signature, which has
// OpenSSL decode it again first. For an Ed25519 host key, decoding costs far more than signing, and a server signs
// once for every connection (test/bench/README.md has the figures). node:crypto takes an already decoded KeyObject in
// the same place, so we decode once and hand it that.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { ParsedKey } from 'ssh2';

/** ssh2's private slots for the two PEM texts (lib/protocol/keyParser.js), found by their descriptions. */
function slot(key: ParsedKey, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(key).find((symbol) => symbol.description === description);
}

/**
 * Returns the same ssh2 key, changed so that its `sign()` and `verify()` use keys decoded once, now; its other
 * methods answer as before. A key whose slots this version of ssh2 does not have works as before, only slower.
 */
export function decodeOnce(key: ParsedKey): ParsedKey {
  const slots = key as unknown as Record<symbol, unknown>;
  const privateSlot = slot(key, 'Private key PEM');
  const publicSlot = slot(key, 'Public key PEM');
  // Asked for its text, the key still gives text (ssh2 checks a host key has a private half; we read bit counts).
  const privateText = key.getPrivatePEM();
  const publicText = key.getPublicPEM();
  key.getPrivatePEM = () => privateText;
  key.getPublicPEM = () => publicText;
  try {
    const decodedPrivate = privateSlot && typeof slots[privateSlot] === 'string' && createPrivateKey(slots[privateSlot]);
    const decodedPublic = publicSlot && typeof slots[publicSlot] === 'string' && createPublicKey(slots[publicSlot]);
    if (decodedPrivate) slots[privateSlot!] = decodedPrivate;
    if (decodedPublic) slots[publicSlot!] = decodedPublic;
  } catch {
    // A kind of key that node:crypto cannot decode by itself: ssh2 goes on using its text.
  }
  return key;
}
