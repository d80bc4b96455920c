// Where a server's CPU goes, by Linux's `perf` (Debian: linux-perf), in kinds that compare across stacks: the
// kernel (system calls, TCP over loopback, switching), cryptography (OpenSSL in Node, Go's crypto packages), memory
// management (V8's garbage collector and malloc; Go's collector and stacks), and the rest (ssh2, Node and V8 running
// JavaScript; x/crypto/ssh and Go's scheduler). Used by `npm run bench -- --versus-go`.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';

const KINDS: [string, RegExp][] = [
  ['kernel', /\[k\]/],
  ['cryptography', /\b(fe_|fe64|x25519|ge_|cmov|Keccak|keccak|sha256|sha512|sha3|encrypt_cpa|matrix_expand|ntt|ossl_|EVP_|evp_|OSSL|OPENSSL|CRYPTO_|ml_kem|mlkem|gcm|aes|poly1305|BN_|bn_|ed25519|edwards25519|curve25519|scalar|table_select|inner_product|sshcrypto|crypto\/)/i],
  ['memory management', /(Scaveng|Marking|Marker|Sweep|Heap|Evacuat|Compact|RememberedSet|ArrayBufferSweeper|Concurrent|malloc|_int_free|cfree|unlink_chunk|runtime\.(gc|mark|scan|sweep|heap|greyobject|findObject|wbBuf|bulkBarrier|mallocgc|memclr|pcvalue|findfunc|getStackMap|copystack|newstack|adjust|step))/],
];

/** Whether `perf record` works here (installed, and allowed for this user); if not, why. */
export function perfMissing(): string | undefined {
  const ran = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  return ran.status === 0 ? undefined : 'no perf (Debian: apt-get install -y linux-perf; and root)';
}

/**
 * Samples process `pid` with `perf record` while `during` runs, and returns each kind's share of its samples
 * (0 to 1), with the number of samples.
 */
export async function cpuByKind(pid: number, file: string, during: () => Promise<void>): Promise<{ shares: Record<string, number>; samples: number }> {
  const recorder = spawn('perf', ['record', '-q', '-F', '2000', '-p', String(pid), '-o', file], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  await during();
  recorder.kill('SIGINT');
  await once(recorder, 'exit');
  const report = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', 'sym', '-g', 'none', '-F', 'overhead,sample,sym'],
    { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  rmSync(file, { force: true });
  const shares: Record<string, number> = { kernel: 0, cryptography: 0, 'memory management': 0, 'the rest': 0 };
  let samples = 0;
  for (const line of report.stdout.split('\n')) {
    const match = /^\s+([\d.]+)%\s+(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    samples += Number(match[2]);
    const kind = KINDS.find(([, pattern]) => pattern.test(match[3]!))?.[0] ?? 'the rest';
    shares[kind]! += Number(match[1]) / 100;
  }
  return { shares, samples };
}
