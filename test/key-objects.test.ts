// decodeOnce() makes an ssh2 key sign and verify with keys node:crypto has already decoded, and changes nothing else.
import assert from 'node:assert/strict';
import { KeyObject, verify } from 'node:crypto';
import { test } from 'node:test';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { newHostKey } from '../shared/server/host-keys.ts';
import { decodeOnce } from '../shared/core/key-objects.ts';

const { utils } = ssh2;

function parse(text: string): ParsedKey {
  const key = utils.parseKey(text);
  assert.ok(!(key instanceof Error), String(key));
  return key;
}

/** What sits in ssh2's private slots of the key (PEM text before decodeOnce, KeyObjects after). */
function slots(key: ParsedKey): unknown[] {
  return Object.getOwnPropertySymbols(key)
    .filter((symbol) => /PEM/.test(symbol.description ?? ''))
    .map((symbol) => (key as unknown as Record<symbol, unknown>)[symbol]);
}

// (newHostKey: ssh2's own key maker gets about one Ed25519 key in 256 wrong.)
for (const [type, hash] of [['ed25519', undefined], ['rsa', 'sha512']] as const) {
  test(`a ${type} key decoded once signs and verifies as before, and still gives its PEM text`, () => {
    const text = newHostKey(type);
    const before = parse(text);
    const privatePEM = before.getPrivatePEM();
    const publicPEM = before.getPublicPEM();
    const key = decodeOnce(parse(text));

    // The point of it: ssh2 now holds decoded keys, which node:crypto does not have to parse at each use.
    assert.equal(slots(before).filter((slot) => typeof slot === 'string').length, 2);
    assert.equal(slots(key).filter((slot) => slot instanceof KeyObject).length, 2);

    const data = Buffer.from('the exchange hash of a session');
    const signature = key.sign(data, hash);
    assert.ok(Buffer.isBuffer(signature));
    assert.equal(verify(hash ?? null, data, publicPEM, signature), true, 'a signature the original key accepts');
    assert.equal(key.verify(data, signature, hash), true);
    assert.equal(key.verify(Buffer.from('something else'), signature, hash), false);
    assert.equal(key.getPrivatePEM(), privatePEM);
    assert.equal(key.getPublicPEM(), publicPEM);
    assert.equal(key.isPrivateKey(), true);
  });
}

test('a public key decoded once verifies what its private key signed', () => {
  const signer = parse(newHostKey('ed25519'));
  const key = decodeOnce(parse(`ssh-ed25519 ${signer.getPublicSSH().toString('base64')}`));
  const data = Buffer.from('a login request');
  assert.equal(key.verify(data, signer.sign(data) as Buffer), true);
  assert.equal(key.verify(data, Buffer.alloc(64)), false);
  assert.equal(key.isPrivateKey(), false);
});
