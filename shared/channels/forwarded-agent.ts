// The agent a client forwards (`ssh -A`), as an agent an ssh2 client can log in with: the server asks the client's
// own agent to sign, and never holds the user's key. Needs the ssh2 patch's agent-forwarding part.
import ssh2 from 'ssh2';
import type { Connection, ParsedKey, ServerCallback } from 'ssh2';

// The local type fix: the patch adds this method, which @types/ssh2 does not know.
declare module 'ssh2' {
  interface Connection {
    /** Opens a channel to the client's forwarded agent (ssh2 patch part 017, agent-forwarding). */
    openssh_authAgent(callback: ServerCallback): this;
  }
}

const { OpenSSHAgent } = ssh2;

/** The most an agent may send on one channel: a list of keys, or a signature, is a few KiB. */
const MAX_AGENT_BYTES = 256 * 1024;
/** How long an agent has to answer. (On some malformed answers ssh2 never calls back: this ends those too.) */
const AGENT_TIMEOUT_MS = 10_000;

/** `callback`, called once: with the agent's answer, or with an error once the agent has taken too long. */
function inTime<T>(callback: (err: Error | null | undefined, answer?: T) => void) {
  let called = false;
  const timer = setTimeout(() => done(new Error(`the agent did not answer within ${AGENT_TIMEOUT_MS / 1000} s`)), AGENT_TIMEOUT_MS);
  const done = (err: Error | null | undefined, answer?: T) => {
    if (called) return;
    called = true;
    clearTimeout(timer);
    callback(err, answer);
  };
  return done;
}

/**
 * The client's forwarded agent, for an ssh2 client's `agent` option. Each question (its keys, a signature) opens a
 * channel to it, as ssh2's own agents open a socket each time; an answer longer than 256 KiB is cut off (at its
 * length, before its bytes come), and so is one that takes over 10 s: its question fails. Only use it once a
 * session's `auth-agent` request was accepted.
 */
export class ForwardedAgent extends OpenSSHAgent {
  readonly #connection: Connection;

  constructor(connection: Connection) {
    super('');
    this.#connection = connection;
  }

  /**
   * How many keys the agent listed when last asked: 0 when it holds none, or none that it lets this server use (a
   * key restricted with `ssh-add -h` is listed only where it may be used).
   */
  offered: number | undefined;

  override getIdentities(callback: (err: Error | null | undefined, keys?: ParsedKey[]) => void): void {
    super.getIdentities(inTime<ParsedKey[]>((err, keys) => {
      this.offered = keys?.length;
      callback(err, keys);
    }) as never);
  }

  override sign(key: ParsedKey | Buffer | string, data: Buffer, ...rest: unknown[]): boolean {
    const callback = rest.pop() as (err: Error | null | undefined, signature?: Buffer) => void;
    return super.sign(key, data, (rest[0] ?? {}) as object, inTime(callback) as never);
  }

  override getStream(callback: ServerCallback): void {
    try {
      this.#connection.openssh_authAgent((err, channel) => {
        if (err) return callback(err, channel);
        // One question, one answer: its length, then that many bytes. A length past the bound is refused at once, and
        // what the agent sends until its side closes (a window's worth) is dropped: ssh2's parser would keep it all,
        // copying it whole again at each packet (2 MiB once took 70 MiB of memory).
        let head = Buffer.alloc(0);
        let received = 0;
        const cut = () => {
          channel.removeListener('data', count);
          channel.unpipe().resume().destroy();
        };
        const count = (data: Buffer) => {
          if (head.length < 4) head = Buffer.concat([head, data]).subarray(0, 4);
          received += data.length;
          if (received > MAX_AGENT_BYTES + 4 || (head.length === 4 && head.readUInt32BE(0) > MAX_AGENT_BYTES)) cut();
        };
        channel.on('data', count);
        callback(undefined, channel);
      });
    } catch (err) {
      callback(err as Error, undefined as never); // the connection has gone: no channel can be opened
    }
  }
}
