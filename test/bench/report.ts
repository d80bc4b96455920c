// The end of a full run (and of --attacks): the tables of what was measured, the comparisons with their targets, and
// all the figures as JSON.
import { writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Args, BUSY, CURRENT_LTS, limitedBy, LOAD_PROCESSES, RUNS, SECONDS } from './harness.ts';
import type { Servers } from './sessions.ts';
import type { UnderAttack } from './under-attack.ts';

/** Prints the tables and comparisons, and writes `results` as JSON (where --json says, or in the temporary folder). */
export function report(args: Args, results: Record<string, any>, servers: Servers, startupMs: Record<string, number>,
  underAttacks: Record<string, UnderAttack>): void {
  if (!args.attacks) console.table(Object.fromEntries(Object.entries(servers).map(([name, r]) => [name, {
    'sessions/s c=1': r.c1.perSecond.toFixed(1),
    'p50 ms c=1': r.c1.p50.toFixed(1),
    'p99 ms c=1': r.c1.p99.toFixed(1),
    'sessions/s c=8': r.c8.perSecond.toFixed(1),
    'p50 ms c=8': r.c8.p50.toFixed(1),
    'CPU ms/session': r.c8.cpuPerSession.toFixed(2),
    'KiB/idle session': r.idleBytesPerSession === undefined ? '' : (r.idleBytesPerSession / 1024).toFixed(1),
    // At c=8, how much of a core each side used (the load generator over its processes).
    'c=8 server / load CPU %': `${r.c8.serverCpuPercent.toFixed(0)} / ${r.c8.loadGeneratorCpuPercent.toFixed(0)}`,
    'c=8 limited by': limitedBy(r.c8),
    'c=8 failed': r.c8.failed,
  }])));
  for (const [name, r] of Object.entries(servers)) console.log(`${name}: ${r.algorithms}`);
  if (!args.attacks && Object.keys(servers).length) {
    console.log(`c=8 limited by: the side that kept its processes ${BUSY}% busy or more (the load: ${LOAD_PROCESSES} `
      + `process(es), --load); "the machine" when neither did but both together used ${BUSY}% of its ${cpus().length} cores`);
  }
  for (const [name, mbps] of Object.entries(results.throughput as Record<string, number>)) {
    const what = name.includes('/dev/null') || !name.includes('cat') ? '' : ', sent back';
    console.log(`${name}: ${mbps.toFixed(1)} MB/s (${name.includes('git') ? 'a repository of 50' : '256'} MiB${what})`);
  }
  for (const [name, ms] of Object.entries(startupMs)) console.log(`start-up of step 03 (npx tsx to "listening on"), ${name}: ${ms.toFixed(0)} ms`);
  if (results.fanOut) {
    const { p50, max, cpuPerMessage } = results.fanOut as { p50: number; max: number; cpuPerMessage: number };
    console.log(`step 13, one message to 100 members: ${p50.toFixed(1)} ms (slowest ${max.toFixed(1)} ms), `
      + `${cpuPerMessage.toFixed(2)} ms of CPU`);
  }
  console.table(Object.fromEntries(Object.entries(underAttacks).map(([name, r]) => [`step ${name}`, {
    'seconds': r.seconds.toFixed(1),
    'step CPU s': r.serverCpuSeconds.toFixed(1),
    'RSS before, MiB': r.rssBeforeMiB.toFixed(0),
    'RSS at most, MiB': r.rssPeakMiB.toFixed(0),
    'logins meanwhile': r.logins,
    'failed': r.loginsFailed,
    'login p50 ms': r.loginP50ms.toFixed(1),
    'login max ms': r.loginMaxMs.toFixed(1),
    // The goal under attack: the step under 300 MiB, and every login of another user's meanwhile under 200 ms.
    'goal': r.rssPeakMiB < 300 && r.loginMaxMs < 200 ? 'met' : 'missed',
  }])));

  // Each comparison: what is divided by what, the quotient, and the target it has, if any. A figure of a
  // server that was not measured (no sshd, or --only) is NaN, and comparisons with it are left out.
  type Comparison = [name: string, value: number, target?: ['<=' | '>=', number]];
  type Measured = (typeof servers)[string];
  const figure = (name: string, pick: (measured: Measured) => number | undefined) =>
    (servers[name] && pick(servers[name])) ?? NaN;
  const rate = (name: string, c: 'c1' | 'c8') => figure(name, (measured) => measured[c].perSecond);
  const p50 = (name: string) => figure(name, (measured) => measured.c1.p50);
  const cpu = (name: string) => figure(name, (measured) => measured.c8.cpuPerSession);
  const idle = (name: string) => figure(name, (measured) => measured.idleBytesPerSession);
  const throughputs = results.throughput as Record<string, number | undefined>;
  const mbps = (name: string) => throughputs[name] ?? NaN;
  const comparisons = ([
    ['sessions/s c=1, password: Nagle on / TCP_NODELAY', rate('step 03, password, Nagle on', 'c1') / rate('step 03, password', 'c1')],
    ['CPU ms/session, password: RSA host key / Ed25519', cpu('step 03, password, RSA host key') / cpu('step 03, password')],
    ['CPU ms/session, password: scrypt / plain text', cpu('step 03, scrypt password') / cpu('step 03, password')],
    ['CPU ms/session, password: ML-KEM hybrid / Curve25519', cpu('step 03, password') / cpu('step 03, password, Curve25519 key exchange')],
    ['sessions/s c=8, password: step 03 / sshd', rate('step 03, password', 'c8') / rate('sshd, password', 'c8'), ['>=', 4]],
    ['sessions/s c=8, public key: step 09 / sshd', rate('step 09, public key', 'c8') / rate('sshd, public key', 'c8'), ['>=', 3]],
    ['sessions/s c=8, scrypt password: step 03 / sshd', rate('step 03, scrypt password', 'c8') / rate('sshd, password', 'c8')],
    ['p50 ms c=1, password: step 03 / sshd', p50('step 03, password') / p50('sshd, password'), ['<=', 1]],
    ['p50 ms c=1, public key: step 09 / sshd', p50('step 09, public key') / p50('sshd, public key'), ['<=', 1]],
    ['CPU ms/session, public key: step 09 / sshd', cpu('step 09, public key') / cpu('sshd, public key')],
    // Go's x/crypto/ssh, at the key exchange it has (Curve25519), against the steps at the same.
    ['CPU ms/session, password: step 03 / Go', cpu('step 03, password, Curve25519 key exchange') / cpu('go, password'), ['<=', 1]],
    ['CPU ms/session, public key: step 09 / Go', cpu('step 09, public key, Curve25519 key exchange') / cpu('go, public key'), ['<=', 1.2]],
    ['sessions/s c=8, password: step 03 / Go', rate('step 03, password, Curve25519 key exchange', 'c8') / rate('go, password', 'c8'), ['>=', 1]],
    ['KiB/idle session: step 09 / Go', idle('step 09, public key') / idle('go, public key')],
    ['KiB/idle session: step 09 / sshd', idle('step 09, public key') / idle('sshd, public key')],
    ['MB/s: step 08 cat / sshd cat > /dev/null', mbps('step 08, cat') / mbps('sshd, cat > /dev/null'), ['>=', 0.5]],
    ['MB/s: step 08 cat / sshd cat', mbps('step 08, cat') / mbps('sshd, cat')],
    ['MB/s: step 11 ssh -L / sshd ssh -L', mbps('step 11, ssh -L') / mbps('sshd, ssh -L'), ['>=', 0.5]],
    // Issue 43: OpenSSH's own client through step 11, at least as fast as through sshd, with each cipher.
    ['MB/s: step 11 / sshd, OpenSSH\'s ssh -L, aes128-gcm', mbps('step 11, OpenSSH\'s ssh -L, aes128-gcm@openssh.com')
      / mbps('sshd, OpenSSH\'s ssh -L, aes128-gcm@openssh.com'), ['>=', 1]],
    ['MB/s: step 11 / sshd, OpenSSH\'s ssh -L, chacha20-poly1305', mbps('step 11, OpenSSH\'s ssh -L, chacha20-poly1305@openssh.com')
      / mbps('sshd, OpenSSH\'s ssh -L, chacha20-poly1305@openssh.com'), ['>=', 1]],
    ['MB/s: step 12 sftp put / sshd sftp put', mbps('step 12, sftp put') / mbps('sshd, sftp put'), ['>=', 0.5]],
    ['MB/s: step 12 sftp get / sshd sftp get', mbps('step 12, sftp get') / mbps('sshd, sftp get'), ['>=', 0.5]],
    ['MB/s: step 19 git push / sshd git-shell push', mbps('step 19, git push') / mbps('sshd, git-shell push'), ['>=', 0.5]],
    ['MB/s: step 19 git clone / sshd git-shell clone', mbps('step 19, git clone') / mbps('sshd, git-shell clone'), ['>=', 0.5]],
    // Two targets are absolute figures, not ratios.
    ['CPU ms/session, public key: step 09', cpu('step 09, public key'), ['<=', 1.5]],
    ['KiB/idle session: step 09', idle('step 09, public key') / 1024, ['<=', 20]],
    // On the current LTS where it was measured, else on this machine's Node.
    ...Object.entries(startupMs).filter(([name], i, all) => name === CURRENT_LTS || (i === 0 && !all.some(([other]) => other === CURRENT_LTS)))
      .map(([name, ms]): Comparison => [`start-up ms: npx tsx steps/03-trivial-channel.ts, ${name}`, ms, ['<=', 500]]),
  ] satisfies Comparison[]).filter(([, value]) => !Number.isNaN(value)) as Comparison[];
  /** 'met', or by how much the figure misses its target (as a share of the target), or '' with no target. */
  const met = ([, value, target]: Comparison) => {
    if (!target) return '';
    if (target[0] === '<=' ? value <= target[1] : value >= target[1]) return 'met';
    const percent = (Math.abs(value - target[1]) / target[1]) * 100;
    return `MISSED by ${percent.toFixed(percent < 10 ? 1 : 0)} %`;
  };
  if (comparisons.length) console.table(Object.fromEntries(comparisons.map((comparison) => {
    const [name, value, target] = comparison;
    return [name, { value: value.toFixed(2), target: target ? target.join(' ') : '', '': met(comparison) }];
  })));
  results.comparisons = Object.fromEntries(comparisons.map((comparison) => [comparison[0], {
    value: comparison[1], target: comparison[2]?.join(' ') ?? null, met: met(comparison) || null,
  }]));
  console.log(`median of ${RUNS} runs, ${SECONDS} s each for session rates; machine: ${JSON.stringify(results.machine)}`);
  // All the figures, as JSON: where --json says, or in the system's temporary folder.
  const jsonFile = args.json ?? join(tmpdir(), `conch-steps-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`all figures: ${jsonFile}`);
}
