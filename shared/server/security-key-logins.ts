// What a FIDO security key's signature says (sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, and
// their certificates: the ssh2 patch's part 019 reads them), for the log, and for the one check its key's verify()
// cannot make alone: a counter that goes backwards, as a copy of the key's would.
import type { AuthContext } from 'ssh2';

/** The flags and counter a security key signed with, or `malformed` when the signature cannot be read. */
export type SecurityKeySignature = { touched: boolean; verified: boolean; counter: number } | { malformed: true };

/**
 * The key (its blob) of a login attempt with a security key or its certificate, and what its signature says; else
 * undefined. The signature (as ssh2 hands it over: the signature proper, then the flags byte and the 32-bit counter)
 * ends the same way for every kind of security key.
 */
export function securityKeySignature(ctx: AuthContext): { blob: Buffer; signed: SecurityKeySignature } | undefined {
  if (ctx.method !== 'publickey' || !ctx.signature || !ctx.key.algo.startsWith('sk-')) return undefined;
  const { data: blob, algo } = ctx.key;
  const signature = ctx.signature;
  // Ed25519's signature proper is 64 bytes; ECDSA's, two mpints (r and s), each a length and its bytes.
  const mpintsEnd = (at: number) => (signature.length >= at + 4 ? at + 4 + signature.readUInt32BE(at) : Infinity);
  const whole = algo.startsWith('sk-ssh-ed25519') ? signature.length === 64 + 5
    : mpintsEnd(mpintsEnd(0)) === signature.length - 5;
  if (!whole) return { blob, signed: { malformed: true } };
  const flags = signature[signature.length - 5]!;
  return { blob, signed: { touched: (flags & 0x01) !== 0, verified: (flags & 0x04) !== 0, counter: signature.readUInt32BE(signature.length - 4) } };
}

/** `touched, not verified, counter 305419896`, or `malformed`, for the log. */
export function describeSignature(signature: SecurityKeySignature): string {
  if ('malformed' in signature) return 'malformed';
  return `${signature.touched ? 'touched' : 'not touched (no user presence)'}, `
    + `${signature.verified ? 'user verified' : 'not user-verified'}, counter ${signature.counter}`;
}

/** For each key (its blob), the highest counter a login with it has had; at most MAX_KEYS, the oldest out first. */
const counters = new Map<string, number>();
const MAX_KEYS = 10_000;

/**
 * The key's last counter when `counter` is below it (tokens count up with each signature, so a lower one comes from
 * another token holding the same key, or from a signature replayed from before), else undefined; a counter that
 * holds is noted. Tokens that keep no counter sign with 0 every time, which passes.
 */
export function counterWentBack(blob: Buffer, counter: number): number | undefined {
  const id = blob.toString('base64');
  const last = counters.get(id);
  if (last !== undefined && counter < last) return last;
  counters.delete(id);
  counters.set(id, counter);
  if (counters.size > MAX_KEYS) counters.delete(counters.keys().next().value!);
  return undefined;
}
