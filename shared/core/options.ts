// The options every step understands. They are read once, as the step starts (when this module is first
// imported), so that `--help` or a bad `--port` stops the step before it does anything else.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { AddressBlocks } from './address-blocks.ts';
import { fail, shown } from './errors.ts';

const script = shown(process.argv[1] ?? 'steps/NN-name.ts');

const help = `Usage: npx tsx ${script} [--port N] [--host ADDRESS]

Options:
  --port N        the port to listen on (default: $PORT, else 2022; 0 picks a free port)
  --host ADDRESS  the address to listen on (default: $HOST, else 127.0.0.1)
  --help          print this help and exit

Environment:
  SSH_PASSWORDS           the password file, one username:password a line (default:
                          keys/ssh-passwords)
  HOST_KEYS_DIR           the folder that holds the host keys (default: keys/)
  SSH_AUTHORIZED_KEYS_DIR the folder of users' public keys, a file for each user (steps 09 and 10;
                          default: keys/authorized_keys/)
  TRUSTED_USER_CA_KEYS    the CA public keys trusted to sign users' keys, one a line (step 15;
                          default: keys/trusted_user_ca_keys)
  REVOKED_CERTIFICATES    certificates no longer taken, a line each: serial N, or id KEY-ID (step
                          15; default: keys/revoked_certificates)
  TOTP_DIR                the folder of users' one-time code secrets, a file for each user, as npm
                          run totp writes them (step 16; default: keys/totp/)
  MAX_AUTH_TRIES          failed logins a connection may make before it is closed (default: 6)
  LOGIN_GRACE_TIME        seconds a connection has to log in (default: 120; 0: no limit)
  MAX_STARTUPS            connections that may be logging in at once, as START:RATE:FULL (default:
                          10:30:100): from START on, a new one is refused with a chance of RATE%,
                          rising to 100% at FULL
  PER_SOURCE_MAX_STARTUPS connections from one address that may be logging in at once (default: 5)
  MAX_SESSIONS            sessions one connection may have open at once (default: 10)
  MAX_FORWARDS            connections one connection may forward at once with ssh -L and -D
                          (default: 100; as many again to sockets, step 23)
  MAX_FORWARDS_PER_USER   forwarded connections one user may have open at once over all their
                          connections, to ports and sockets together (default: 100)
  MAX_REMOTE_FORWARDS     ports (or sockets, step 23) one connection may listen on with ssh -R
                          (default: 10)
  SFTP_HOME               the folder of the users' folders for SFTP (step 12; default: home/)
  SFTP_MAX_HANDLES        files and folders one SFTP session may have open at once (default: 100)
  CHAT_LINE_MAX           the longest message, in characters, of the chat room (step 13; default:
                          300)
  CHAT_RATE               messages one user may send in 10 seconds, and times they may join (step
                          13; default: 10)
  CHAT_QUEUE_MAX          bytes waiting for a chat client that is not reading, past which it is
                          disconnected (step 13; default: 65536)
  FORWARD_TO              where ssh -L and -D may connect (step 11): address blocks, separated by
                          commas (default: 127.0.0.0/8,::1/128, this machine alone; 0.0.0.0/0,::/0
                          is anywhere)
  PROXY_PROTOCOL_FROM     the load balancers in front of the step: address blocks, separated by
                          commas; each connection from them must start with a PROXY header (v1 or
                          v2), which gives the client's real address (default: none)
  DRAIN_TIMEOUT           seconds that logged-in connections get to finish after SIGTERM (default:
                          30; 0: none)
  RETIRE_TIMEOUT          seconds that a worker replaced by a rolling restart (step 17) goes on
                          serving the sessions it has (default: 86400, a day; 0: none)
  WORKERS                 how many worker processes serve (step 17; default: one for each core)
  GIT_REPOS_DIR           the folder of the git repositories (step 19; default: repos/)
  GIT_ACCESS              who may read and push which repository (step 19; default: keys/git-access)
  GIT_MAX_PUSH            the largest push, in MiB (step 19; default: 1024)
  GIT_MAX_REPOS           repositories one user may have (step 19; default: 100)
  GIT_MAX_DISK            MiB one user's repositories may hold, past which pushes are refused
                          (step 19; default: 2048)
  GIT_MAX_RUNNING         git programs one user may run at once (step 19; default: 10)
  GIT_MAX_RUNNING_ALL     git programs all users together may run at once (step 19; default: 50)
  TARGET                  the inner server the bastion logs users in to, HOST:PORT (step 20;
                          default: localhost:2023)
  KNOWN_HOSTS             the inner servers' host keys, as ssh-keyscan prints them (step 20;
                          default: keys/known_hosts)
  ONWARD_FAILURES_MAX     failed logins to the inner server one user may have in a minute, past
                          which that user's sessions are refused for a while (step 20; default: 3)
  ONWARD_SESSIONS_MAX     sessions one user may have on the inner server at once, over all their
                          connections, past which new ones are refused (step 20; default: 50)
  RECORDINGS_DIR          the folder of the recorded sessions (step 20; default: recordings/)
  RECORDINGS_PORT         the port of the recordings page, on 127.0.0.1 (step 20; default: 2080)
  RECORDING_MAX           the largest recording of one session, in MiB, past which the rest of it is
                          not recorded, and the recording and the log say so (step 20; default: 64)
  RECORDINGS_MAX          the recordings the folder may hold, past which new sessions are refused
                          (step 20; default: 10000)
  RECORDINGS_PER_USER     the recordings of one user the folder may hold, past which that user's new
                          sessions are refused (step 20; default: 1000)
  SOCKETS_DIR             the folder of the users' socket folders for ssh -R PATH (step 23;
                          default: conch-steps-sockets-UID in the system's temporary folder)
  FORWARD_TO_SOCKETS      the sockets any user may reach with ssh -L PORT:PATH (step 23): paths,
                          separated by commas, a folder's ending in / (default: none; each user
                          reaches their own)
  TUNNELS_HTTP            where the HTTP front of the tunnels listens, HOST:PORT (step 22; default:
                          127.0.0.1:8080)
  TUNNELS_DOMAIN          the domain under which the tunnels' names are, NAME.DOMAIN (step 22;
                          default: localhost)
  TUNNEL_NAMES            the file of tunnel names and their owners, a NAME OWNER line each
                          (step 22; default: keys/tunnel-names)
  TUNNEL_ACCESS           who may reach a TCP alias besides its owner, a NAME USER... line each
                          (step 22; default: keys/tunnel-access)
  TUNNELS_HTTP_MAX        connections the HTTP front of the tunnels keeps open at once, past which
                          new ones are closed unread (step 22; default: 1000)
  TUNNEL_CONNECTIONS_MAX  requests and WebSockets one user's tunnels serve at once, past which the
                          front answers 503 (step 22; default: 100)
  STORE_URL               the Valkey or Redis server the machines of a fleet share their state in,
                          redis://HOST:PORT (step 21; default: redis://127.0.0.1:6379)
  MACHINE                 this machine's name in the fleet, as /who shows it (step 21; default:
                          the host name)
  STORE_TIMEOUT           seconds a call to the store may take before it counts as unreachable
                          (step 21; default: 1); a login waits for it 0.1 s at most
  MAX_CONNECTIONS         logged-in connections the step serves at once (default: 1000)
  AUTH_PENALTY_MAX        the longest delay, in seconds, before answering an address that keeps
                          failing to log in (default: 8; 0: no delay)
  SOURCE_PENALTY_MAX      the longest time, in seconds, that an address whose connections keep
                          ending without logging in is refused (default: 600; 0: never refused)
  KEEPALIVE_INTERVAL      seconds between checks that a logged-in client is still there (default:
                          15)
  KEEPALIVE_COUNT_MAX     unanswered checks before the connection is closed (default: 3)
`;

function read(): { port: number; host: string } {
  // parseArgs takes `--port -1` for an option with its value missing; say what is wrong with the value instead.
  const portAt = process.argv.indexOf('--port');
  const next = portAt === -1 ? undefined : process.argv[portAt + 1];
  if (next !== undefined && /^-\d/.test(next)) fail(`the port must be a number from 0 to 65535, not "${next}"`);
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    fail(`${(err as Error).message.split('\n')[0]} (see --help)`);
  }
  if (values.help) {
    process.stdout.write(help);
    process.exit(0);
  }
  const portText = values.port ?? (process.env.PORT || '2022');
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    fail(`the port must be a number from 0 to 65535, not "${portText}"`);
  }
  const host = values.host ?? (process.env.HOST || '127.0.0.1');
  return { port, host };
}

/** The port and address to listen on, from `--port`/`PORT` and `--host`/`HOST`. */
export const options = read();

/** The number in the environment variable `name` (`min` to `max`), or `fallback` when it is not set. */
function setting(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const text = process.env[name] || String(fallback);
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) < min || Number(text) > max) {
    fail(`${name} must be a number ${max < Number.MAX_SAFE_INTEGER ? `from ${min} to ${max}` : `of at least ${min}`}`
      + `, not "${text}"`);
  }
  return Number(text);
}

/** The most seconds a timer is set for: Node's timers take up to 2^31 - 1 ms (24.8 days), and fire at once past it. */
const MAX_SECONDS = 2_000_000;

/** `MAX_STARTUPS` as sshd reads MaxStartups: `START:RATE:FULL`, or one number N, meaning N:100:N. */
function startups(): { start: number; rate: number; full: number } {
  const text = process.env.MAX_STARTUPS || '10:30:100';
  const match = /^(\d+)(?::(\d+):(\d+))?$/.exec(text);
  const [start, rate, full] = match ? [Number(match[1]), Number(match[2] ?? 100), Number(match[3] ?? match[1])] : [];
  if (!match || start! < 1 || rate! > 100 || full! < start!) {
    fail(`MAX_STARTUPS must be a number of at least 1, or START:RATE:FULL such as 10:30:100, not "${text}"`);
  }
  return { start: start!, rate: rate!, full: full! };
}

/** Address blocks separated by commas (`127.0.0.0/8,::1`) from the variable `name`, or `fallback` if it is unset. */
function blocks(name: string, fallback: string): AddressBlocks {
  const text = process.env[name] || fallback;
  try {
    return new AddressBlocks(text);
  } catch (err) {
    fail(`${name} must be address blocks separated by commas, such as 127.0.0.0/8,::1/128: ${(err as Error).message}`);
  }
}

/** The limits that protect every step, as sshd's settings of the same names do (see shared/README.md). */
export const limits = {
  maxAuthTries: setting('MAX_AUTH_TRIES', 6, 1),
  loginGraceTime: setting('LOGIN_GRACE_TIME', 120, 0, MAX_SECONDS),
  maxStartups: startups(),
  perSourceMaxStartups: setting('PER_SOURCE_MAX_STARTUPS', 5, 1),
  maxSessions: setting('MAX_SESSIONS', 10, 1),
  maxForwards: setting('MAX_FORWARDS', 100, 1),
  maxForwardsPerUser: setting('MAX_FORWARDS_PER_USER', 100, 1),
  maxRemoteForwards: setting('MAX_REMOTE_FORWARDS', 10, 1),
  sftpMaxHandles: setting('SFTP_MAX_HANDLES', 100, 1),
  gitMaxPush: setting('GIT_MAX_PUSH', 1024, 1, 1_000_000),
  gitMaxRepos: setting('GIT_MAX_REPOS', 100, 1),
  gitMaxDisk: setting('GIT_MAX_DISK', 2048, 1, 1_000_000_000),
  gitMaxRunning: setting('GIT_MAX_RUNNING', 10, 1),
  gitMaxRunningAll: setting('GIT_MAX_RUNNING_ALL', 50, 1),
  onwardFailuresMax: setting('ONWARD_FAILURES_MAX', 3, 1),
  onwardSessionsMax: setting('ONWARD_SESSIONS_MAX', 50, 1),
  recordingMax: setting('RECORDING_MAX', 64, 1, 1_000_000),
  recordingsMax: setting('RECORDINGS_MAX', 10_000, 1),
  recordingsPerUser: setting('RECORDINGS_PER_USER', 1000, 1),
  tunnelsHttpMax: setting('TUNNELS_HTTP_MAX', 1000, 1),
  tunnelConnectionsMax: setting('TUNNEL_CONNECTIONS_MAX', 100, 1),
  chatLineMax: setting('CHAT_LINE_MAX', 300, 1),
  chatRate: setting('CHAT_RATE', 10, 1),
  chatQueueMax: setting('CHAT_QUEUE_MAX', 65536, 1024),
  maxConnections: setting('MAX_CONNECTIONS', 1000, 1),
  authPenaltyMax: setting('AUTH_PENALTY_MAX', 8, 0, MAX_SECONDS),
  sourcePenaltyMax: setting('SOURCE_PENALTY_MAX', 600, 0, MAX_SECONDS),
  keepaliveInterval: setting('KEEPALIVE_INTERVAL', 15, 0, MAX_SECONDS),
  keepaliveCountMax: setting('KEEPALIVE_COUNT_MAX', 3, 0),
  /** `FORWARD_TO`: the address blocks that `ssh -L` and `-D` may reach (step 11). */
  forwardTo: blocks('FORWARD_TO', '127.0.0.0/8,::1/128'),
  /** `PROXY_PROTOCOL_FROM`: the load balancers whose connections start with a PROXY header (none by default). */
  proxyFrom: process.env.PROXY_PROTOCOL_FROM ? blocks('PROXY_PROTOCOL_FROM', '') : undefined,
  drainTimeout: setting('DRAIN_TIMEOUT', 30, 0, MAX_SECONDS),
  retireTimeout: setting('RETIRE_TIMEOUT', 86_400, 0, MAX_SECONDS),
};

/**
 * Step 21's fleet: `STORE_URL`, the store every machine shares its state in, `MACHINE`, this one's name, and
 * `STORE_TIMEOUT`, how long a call to the store may take before it counts as unreachable (in seconds).
 */
export const fleet = {
  storeUrl: ((text) => {
    if (!/^rediss?:\/\/([^/@\s]+@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?(\/\d{1,2})?$/.test(text)) {
      fail(`STORE_URL must be redis://HOST:PORT (or rediss:// for TLS), such as redis://127.0.0.1:6379, not "${text}"`);
    }
    return text;
  })(process.env.STORE_URL || 'redis://127.0.0.1:6379'),
  machine: ((text) => {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(text)) fail(`MACHINE must be letters, digits, . _ or -, at most 64, not "${text}"`);
    return text;
  })(process.env.MACHINE || hostname()),
  storeTimeout: setting('STORE_TIMEOUT', 1, 0.1, 3600),
};

/** `TARGET`, as HOST:PORT (`[::1]:2023` for an IPv6 address): where step 20, the bastion, takes its users. */
export const target = ((text) => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(text);
  if (!match || Number(match[3]) < 1 || Number(match[3]) > 65535) {
    fail(`TARGET must be HOST:PORT, such as localhost:2023, not "${text}"`);
  }
  return { host: match[1] ?? match[2]!, port: Number(match[3]), shown: text };
})(process.env.TARGET || 'localhost:2023');
