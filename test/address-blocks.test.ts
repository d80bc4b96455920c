// shared/core/address-blocks.ts: IPv4 and IPv6 blocks matched apart, and IPv4 written as IPv6 taken as IPv4.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressBlocks, plainAddress } from '../shared/core/address-blocks.ts';

test('an IPv4 address written as IPv6, in any spelling, is the IPv4 address it is', () => {
  for (const spelling of ['::ffff:127.0.0.1', '::FFFF:127.0.0.1', '::ffff:7f00:1', '::ffff:7f00:0001',
    '0:0:0:0:0:ffff:7f00:1', '0::ffff:127.0.0.1', '0:0:0:0:0:ffff:127.0.0.1']) {
    assert.equal(plainAddress(spelling), '127.0.0.1', spelling);
  }
  for (const other of ['::1', '::7f00:1', '::127.0.0.1', '64:ff9b::7f00:1', '::fffe:7f00:1', '1::ffff:7f00:1', '127.0.0.1', 'name']) {
    assert.equal(plainAddress(other), other, other);
  }
});

test('IPv6 blocks hold no IPv4 address, and IPv4 blocks no IPv6 one', () => {
  const v6 = new AddressBlocks('2001:db8::/32,::/0');
  for (const address of ['127.0.0.1', '10.1.2.3', '0.0.0.0', '::ffff:127.0.0.1', '::ffff:7f00:1']) {
    assert.equal(v6.has(address), false, address);
  }
  assert.ok(v6.has('::1') && v6.has('2001:db8::5') && v6.has('fe80::1%lo'));
  const v4 = new AddressBlocks('0.0.0.0/0');
  assert.ok(v4.has('127.0.0.1') && v4.has('::ffff:127.0.0.1') && v4.has('::ffff:a01:203'));
  assert.ok(!v4.has('::1') && !v4.has('::') && !v4.has('2001:db8::1'));
  const mixed = new AddressBlocks('127.0.0.0/8, ::1/128');
  assert.ok(mixed.has('127.5.6.7') && mixed.has('::1') && !mixed.has('::2') && !mixed.has('128.0.0.1'));
  for (const notAnAddress of ['', 'localhost', '2130706433', '127.1', '0']) assert.equal(mixed.has(notAnAddress), false, notAnAddress);
});

test('what is not a list of blocks is refused, naming the item', () => {
  for (const [text, item] of [['10.0.0.0/33', '10.0.0.0/33'], ['::/129', '::/129'], ['10.0.0.0/8,x', 'x'], ['1.2.3.4/8/8', '1.2.3.4/8/8'],
    ['', ''], ['10.0.0.0/', '10.0.0.0/'], ['10.0.0.0/-1', '10.0.0.0/-1'], ['fe80::1%eth0', 'fe80::1%eth0'], ['10.0.0.0/0008', '10.0.0.0/0008']]) {
    assert.throws(() => new AddressBlocks(text!), { message: `"${item}" is not an address block` }, text);
  }
});
