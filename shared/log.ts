// The server's log: one line an event, on standard output, starting with the client's address.

/** Prints `127.0.0.1:51848 MESSAGE` (or `[::1]:51848 MESSAGE`), naming the connection the line is about. */
export function log(from: { ip?: string | undefined; port?: number | undefined }, message: string): void {
  console.log(`${address(from.ip, from.port)} ${message}`);
}

/** `127.0.0.1:2022`, or `[::1]:2022` for an IPv6 address. */
export function address(host: string | undefined, port: number | undefined): string {
  const name = host ?? 'unknown';
  return `${name.includes(':') ? `[${name}]` : name}:${port ?? '?'}`;
}
