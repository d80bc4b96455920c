// A software FIDO security key for the tests: a key pair that signs as a token does (OpenSSH's PROTOCOL.u2f), with
// the flags and counter a test chooses, so that the tests can send what no real token would. (OpenSSH's own
// sk-dummy provider, .ci/sk-dummy, is the software key for the real client.)
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import ssh2 from 'ssh2';

/** SSH strings: each field with its 32-bit length before it. */
export const sshStrings = (...fields: Buffer[]) => Buffer.concat(fields.flatMap((field) => {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(field.length);
  return [length, field];
}));
const text = (value: string) => Buffer.from(value);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();
/** An SSH mpint of an unsigned big-endian number. */
function mpint(bytes: Buffer): Buffer {
  let at = 0;
  while (at < bytes.length - 1 && bytes[at] === 0) at++;
  const trimmed = bytes.subarray(at);
  return trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
}

export type SecurityKeyKind = 'ed25519' | 'ecdsa';

/**
 * A security key of `kind` made for `application`: its type, public key blob and authorized_keys line, and
 * `sign(message, flags, counter)`, which returns the signature as it follows the algorithm name on the wire (and as
 * ssh2's server hands it to `verify()`): the signature proper, then the flags byte and the 32-bit counter.
 */
export function softwareSecurityKey(kind: SecurityKeyKind, application = 'ssh:') {
  const pair = kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const type = kind === 'ed25519' ? 'sk-ssh-ed25519@openssh.com' : 'sk-ecdsa-sha2-nistp256@openssh.com';
  const point = kind === 'ed25519' ? [Buffer.from(jwk.x!, 'base64url')]
    : [text('nistp256'), Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])];
  const blob = sshStrings(text(type), ...point, text(application));
  const signature = (message: Buffer, flags: number, counter: number, signedFor = application) => {
    const tail = Buffer.alloc(5);
    tail[0] = flags;
    tail.writeUInt32BE(counter, 1);
    const signed = Buffer.concat([sha256(text(signedFor)), tail, sha256(message)]);
    if (kind === 'ed25519') return Buffer.concat([sign(null, signed, pair.privateKey), tail]);
    const rs = sign('sha256', signed, { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
    return Buffer.concat([sshStrings(mpint(rs.subarray(0, 32)), mpint(rs.subarray(32))), tail]);
  };
  return { type, blob, line: `${type} ${blob.toString('base64')} alice@token`, sign: signature };
}

/**
 * An agent for ssh2's client that holds one security key and answers each request to sign with what `answer`
 * makes of the data: how the tests send a client's security-key signatures of their own choosing.
 */
export class SecurityKeyAgent extends ssh2.BaseAgent {
  private readonly key: ReturnType<typeof softwareSecurityKey>;
  private readonly answer: (data: Buffer) => Buffer;
  constructor(key: ReturnType<typeof softwareSecurityKey>, answer: (data: Buffer) => Buffer) {
    super();
    this.key = key;
    this.answer = answer;
  }
  getIdentities(callback: (err: Error | undefined, keys?: ssh2.ParsedKey[]) => void): void {
    callback(undefined, [ssh2.utils.parseKey(this.key.blob) as ssh2.ParsedKey]);
  }
  sign(publicKey: unknown, data: Buffer, options: unknown, callback?: (err: Error | undefined, signature?: Buffer) => void): void {
    const done = (typeof options === 'function' ? options : callback) as (err: Error | undefined, signature?: Buffer) => void;
    done(undefined, this.answer(data));
  }
}
