// The post-quantum hybrid key exchange that shared/patches/ adds to ssh2 (mlkem768x25519-sha256): what a client
// sends that is not a proper C_INIT ends that exchange cleanly, and ML-KEM from node:crypto and from
// @noble/post-quantum agree with each other and with OpenSSH 10.6.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { count, inDebianTesting, kexinitPacket, plainPacket, root, startStep, todayRuntime, useStep, waitFor } from './helpers.ts';

const PQ = 'mlkem768x25519-sha256';

/** SSH_MSG_KEX_ECDH_INIT (30) carrying `data` as its one string. */
function ecdhInit(data: Buffer): Buffer {
  const payload = Buffer.alloc(1 + 4 + data.length);
  payload[0] = 30;
  payload.writeUInt32BE(data.length, 1);
  data.copy(payload, 5);
  return plainPacket(payload);
}

describe('mlkem768x25519: the hybrid exchange, against a C_INIT that is not one', { timeout: 60_000 }, () => {
  const step = useStep('03-trivial-channel.ts');

  /** Starts an exchange of the hybrid alone, sends `cInit`, and resolves once the server has closed. */
  async function exchange(cInit: Buffer): Promise<void> {
    const socket = connect(step().port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume();
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('SSH-2.0-conch-steps-test\r\n');
    socket.write(kexinitPacket(Math.random, PQ));
    socket.write(ecdhInit(cInit));
    await new Promise((resolve) => socket.once('close', resolve));
  }

  for (const length of [0, 32, 1184, 1215, 1217, 4096]) {
    test(`${length} bytes instead of 1216: refused, the step goes on`, async () => {
      await exchange(randomBytes(length));
      await waitFor('the log line', () =>
        count(step(), new RegExp(`error: .*Invalid C_INIT length: ${length}, expected: 1216$`, 'gm')) === 1 || undefined);
    });
  }

  test('an ML-KEM public key whose numbers are out of range: refused, the step goes on', async () => {
    await exchange(Buffer.concat([Buffer.alloc(1184, 0xff), randomBytes(32)]));
    // From @noble/post-quantum: "ML-KEM.encapsulate: wrong publicKey modulus" (node:crypto: "Invalid key data").
    await waitFor('the log line', () =>
      count(step(), /error: Error while computing DH secret \(mlkem768x25519\): .*(modulus|Invalid key data)$/gm) === 1 || undefined);
  });

  test('after all that, the ssh2 client still negotiates the hybrid and logs in', async () => {
    const client = new ssh2.Client();
    const kex = await new Promise<string>((resolve, reject) => {
      let negotiated = '';
      client.on('handshake', (n) => (negotiated = n.kex)).on('ready', () => resolve(negotiated)).on('error', reject);
      client.connect({ host: '127.0.0.1', port: step().port, username: 'alice', password: 'wonderland' });
    });
    client.end();
    assert.equal(kex, PQ);
  });
});

describe('mlkem768x25519: both sources of ML-KEM', { timeout: 60_000 }, () => {
  test('node:crypto (Node 24) and @noble/post-quantum agree, each way', () => {
    const script = `
      const { ml_kem768 } = require('@noble/post-quantum/ml-kem.js');
      const crypto = require('node:crypto');
      const node = require('./node_modules/ssh2/lib/protocol/mlkem.js').mlkem768;
      if (node.source !== 'node:crypto') throw new Error('node:crypto was not chosen: ' + node.source);
      const fromNode = node.keygen();
      const toNode = ml_kem768.encapsulate(fromNode.publicKey);
      const a = node.decapsulate(Buffer.from(toNode.cipherText), fromNode.secretKey).equals(Buffer.from(toNode.sharedSecret));
      const fromNoble = ml_kem768.keygen();
      const toNoble = node.encapsulate(Buffer.from(fromNoble.publicKey));
      const b = Buffer.from(ml_kem768.decapsulate(toNoble.cipherText, fromNoble.secretKey)).equals(toNoble.sharedSecret);
      console.log(a && b ? 'agree' : 'differ');`;
    const result = spawnSync(todayRuntime('node24/bin/node'), ['-e', script], { cwd: root, encoding: 'utf8' });
    assert.equal(result.stdout, 'agree\n', result.stderr);
  });

  for (const [source, runtime] of [['noble', undefined], ['node', () => [todayRuntime('node24/bin/node')]]] as const) {
    test(`OpenSSH 10.6 and a step whose ML-KEM is ${source === 'node' ? 'node:crypto (Node 24)' : '@noble/post-quantum (Node 20)'}`, async () => {
      const step = await startStep('03-trivial-channel.ts', { env: { SSH2_MLKEM: source }, runtime: runtime?.() });
      try {
        const result = await inDebianTesting(['ssh', '-v', '-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null',
          '-o', 'StrictHostKeyChecking=no', '-p', String(step.port), 'alice@127.0.0.1'], 'wonderland');
        assert.equal(result.stdout, 'This session is very simple. Goodbye!\r\n', result.stderr);
        assert.match(result.stderr, /^debug1: kex: algorithm: mlkem768x25519-sha256$/m);
      } finally {
        await step.stop();
      }
    });
  }
});
