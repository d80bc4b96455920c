// Port forwarding's rules (step 11): where `ssh -L` and `-D` may connect, and how a refusal is told.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { ServerChannel } from 'ssh2';
import { plainAddress } from '../core/address-blocks.ts';
import { safe } from '../core/log.ts';
import { limits } from '../core/options.ts';

/** RFC 4254's reason code for a channel refused by policy; `ssh` prints it as "administratively prohibited". */
const ADMINISTRATIVELY_PROHIBITED = 1;

/**
 * Refuses a channel by policy, saying why. ssh2's `reject()` takes a reason and a description with the patch in
 * shared/patches/; @types/ssh2 says it takes nothing, hence the cast, here alone.
 */
export function prohibit(reject: () => void, why: string): void {
  // The client named the destination: sent back escaped and cut short, as the log does.
  (reject as (reason: number, description: string) => void)(ADMINISTRATIVELY_PROHIBITED, safe(why));
}

/**
 * The address to connect to for `host` (a name or an address): the first it stands for that `FORWARD_TO` allows,
 * else undefined. The step connects to this address, not to the name again, so that a name cannot pass the check
 * with one address and be connected to at another.
 */
export async function allowedAddress(host: string): Promise<string | undefined> {
  // A name the resolver refuses (a NUL byte in it) throws at once on some Node.js versions, rather than rejecting.
  const found = isIP(host) ? [{ address: host }] : await Promise.resolve(host)
    .then((name) => lookup(name, { all: true })).catch(() => []);
  // An IPv4 address written as IPv6 (::ffff:127.0.0.1, ::ffff:7f00:1) is checked, and reached, as the IPv4 address
  // it is; IPv4 and IPv6 blocks are matched apart (shared/core/address-blocks.ts).
  return found.map(({ address }) => plainAddress(address)).find((address) => limits.forwardTo.has(address));
}

/**
 * Joins two channels both ways, as step 22 joins a user's `ssh -L` to another's `ssh -R`: each one's data to the
 * other, no faster than it is taken; its EOF as EOF (ssh2 closes a server's channel at `end()`, which would cut off
 * the answer still to come the other way); and the close of either closes both.
 */
export function joinChannels(a: ServerChannel, b: ServerChannel): void {
  for (const [from, to] of [[a, b], [b, a]] as const) {
    from.pipe(to, { end: false });
    from.once('end', () => to.eof());
    from.once('close', () => to.close());
    from.on('error', () => to.close());
  }
}
