// Lists of address blocks (`127.0.0.0/8,::1/128`), matched as OpenSSH matches them: FORWARD_TO (step 11),
// PROXY_PROTOCOL_FROM (step 17) and a certificate's source-address (step 15).
import { BlockList, isIP } from 'node:net';

/**
 * An IPv4 address written as IPv6 (`::ffff:127.0.0.1`, `::ffff:7f00:1`, or any other spelling of the block
 * ::ffff:0:0/96) as the IPv4 address it is; any other address as it is. A socket on `::` shows IPv4 clients so.
 */
export function plainAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  const words = ipv6Words(address);
  if (words.slice(0, 5).some((word) => word !== 0) || words[5] !== 0xffff) return address;
  return [words[6]! >> 8, words[6]! & 0xff, words[7]! >> 8, words[7]! & 0xff].join('.');
}

/** The eight 16-bit words of an IPv6 address (one that `isIP()` calls IPv6). */
function ipv6Words(address: string): number[] {
  let text = address.split('%')[0]!.toLowerCase(); // a zone (fe80::1%eth0) names an interface, not an address
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left = '', right] = text.split('::');
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const gap = right === undefined ? [] : Array<string>(8 - head.length - tail.length).fill('0');
  return [...head, ...gap, ...tail].map((word) => parseInt(word, 16));
}

/**
 * Address blocks, IPv4 and IPv6 kept apart: an IPv4 block holds only IPv4 addresses and an IPv6 block only IPv6
 * ones, as in OpenSSH. (Node's `BlockList` alone matches an IPv4 address against IPv6 blocks as ::ffff:a.b.c.d,
 * so that `::/0` would hold every IPv4 address.)
 */
export class AddressBlocks {
  private readonly ipv4 = new BlockList();
  private readonly ipv6 = new BlockList();

  /**
   * Reads blocks separated by commas; a block without a prefix length is one address. Throws an Error naming the
   * first item that is not a block.
   */
  constructor(text: string) {
    for (const item of text.split(',')) {
      const [address = '', bits, extra] = item.trim().split('/');
      const family = isIP(address);
      const most = family === 6 ? 128 : 32;
      const prefix = bits === undefined ? most : Number(bits);
      if (!family || extra !== undefined || !/^\d{1,3}$/.test(bits ?? '0') || prefix > most || address.includes('%')) {
        throw new Error(`"${item.trim().slice(0, 60)}" is not an address block`);
      }
      if (family === 4) this.ipv4.addSubnet(address, prefix, 'ipv4');
      else this.ipv6.addSubnet(address, prefix, 'ipv6');
    }
  }

  /** Whether a block holds `address` (IPv4 written as IPv6 counts as IPv4; anything not an address: no). */
  has(address: string): boolean {
    const plain = plainAddress(address);
    const family = isIP(plain);
    if (family === 4) return this.ipv4.check(plain, 'ipv4');
    return family === 6 && this.ipv6.check(plain.split('%')[0]!, 'ipv6');
  }
}
