// `npm run bench`: what the steps cost, side by side with OpenSSH's sshd, measured on this machine in one run.
// Not a test: it asserts nothing, it measures. Options:
//   --runs N        runs of each figure, whose median is reported (default 3)
//   --seconds S     length of each session-rate run (default 4)
//   --json FILE     where to write all the figures (default: a new file in the system's temporary folder)
//   --profile DIR   run the steps under `node --cpu-prof`, keep the profiles in DIR, print where time goes
//   --only TEXT     only the figures of the servers whose names hold TEXT, such as "step 09" or "go|Curve25519"
//   --attacks       only the figures under attack: a step's memory, and a login's latency, while it is attacked
//                   (with --only TEXT, the attacks whose rows hold TEXT, such as "step 18" or "step 14|step 20")
//   --load N        processes of the load generator at eight clients at a time (default: a core less than the
//                   machine has, from 1 to 4, so that one core at least is left to the server)
//   --soak N        only a soak: N sessions of step 03 at eight at a time, on this machine's Node and on the
//                   current LTS (where .ci/today installed it); fails if any session times out or the step stops
//                   answering
//   --versus-go     only step 03 against Go 1.27's x/crypto/ssh (built with the Go of .ci/today's Debian testing
//                   root), with mlkem768x25519-sha256 and curve25519-sha256, at paced rates and at saturation, driven
//                   by ssh2's client and by Go's, on Node 26 (with node_modules installed under it) and this Node;
//                   beside them, the same on ssh2 alone (ssh2-server.ts); where each one's CPU goes
//                   (by perf, when it is there); start-up, and that of the tools alone (tools-alone.ts)
//   --startup       only step 03's start-up, split: npx tsx, the tools alone, and node --import tsx (this Node, Node 26)
//
// Starts the servers itself: step 03 (password: from the demo file, from an scrypt-hashed file, and with Nagle's
// algorithm left on by nagle-on.ts), step 09 (public key), step 08 (exec cat), and sshd with a config, host
// key and user of its own (sshd.ts; that part needs root and Debian's openssh-server, and is left out with a
// reason when either is missing). Every server is driven by the same load generator: the ssh2 client, from this
// process.
//
// This file reads the options and runs the parts, a file each: startup.ts (--startup), soak.ts (--soak), versus-go.ts
// (--versus-go); else sessions.ts (every server side by side), throughput.ts (bytes through them), scaling.ts (a room
// of 100, more cores, more machines), ink.ts (step 18's memory), tunnels.ts (step 22's HTTP through a tunnel),
// under-attack.ts (--attacks), then report.ts.
// harness.ts is what they share: starting servers, the load, /proc, the bench's folder and users.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { configure, setUp } from './harness.ts';
import { measureInk } from './ink.ts';
import { report } from './report.ts';
import { measureScaling } from './scaling.ts';
import { measureSessions } from './sessions.ts';
import { measureSoak } from './soak.ts';
import { measureStartup } from './startup.ts';
import { measureThroughput } from './throughput.ts';
import { measureTunnels } from './tunnels.ts';
import { measureUnderAttack } from './under-attack.ts';
import { measureVersusGo } from './versus-go.ts';

function options() {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '4' },
        json: { type: 'string' },
        profile: { type: 'string' },
        only: { type: 'string' },
        attacks: { type: 'boolean' },
        load: { type: 'string', default: String(Math.min(4, Math.max(1, cpus().length - 1))) },
        soak: { type: 'string' },
        startup: { type: 'boolean' },
        'versus-go': { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    console.error(`bench: ${(err as Error).message} (options: --runs N --seconds S --json FILE --profile DIR --only TEXT --attacks --load N --soak N --versus-go --startup)`);
    process.exit(1);
  }
}
const args = options();
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
if (!Number.isInteger(RUNS) || RUNS < 1 || !(SECONDS > 0)) {
  console.error('bench: --runs takes a whole number from 1, and --seconds a number above 0');
  process.exit(1);
}
/** The load processes for c=8 (`--load N`): the server, not the client, should be what limits the rate. */
const LOAD_PROCESSES = Number(args.load);
if (!Number.isInteger(LOAD_PROCESSES) || LOAD_PROCESSES < 1) {
  console.error('bench: --load takes a whole number from 1');
  process.exit(1);
}
configure(RUNS, SECONDS, LOAD_PROCESSES);
await setUp();

if (args.startup) await measureStartup();
else if (args.soak !== undefined) await measureSoak(args.soak);
else if (args['versus-go']) await measureVersusGo(args.json);
else {
  const { results, servers, startupMs, sshd } = await measureSessions(args);
  await measureThroughput(args, results, sshd);
  sshd?.stop();
  await measureScaling(args, results);
  await measureInk(args, results);
  await measureTunnels(args, results);
  const underAttack = await measureUnderAttack(args, results);
  report(args, results, servers, startupMs, underAttack);
}
process.exit(0);
