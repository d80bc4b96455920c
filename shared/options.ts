// The options every step understands. They are read once, as the step starts (when this module is first
// imported), so that `--help` or a bad `--port` stops the step before it does anything else.
import { parseArgs } from 'node:util';
import { fail, shown } from './errors.ts';

const script = shown(process.argv[1] ?? 'steps/NN-name.ts');

const help = `Usage: npx tsx ${script} [--port N] [--host ADDRESS]

Options:
  --port N        the port to listen on (default: $PORT, else 2022; 0 picks a free port)
  --host ADDRESS  the address to listen on (default: $HOST, else 127.0.0.1)
  --help          print this help and exit

Environment:
  SSH_PASSWORDS   the password file, one username:password a line (default: keys/ssh-passwords)
  HOST_KEYS_DIR   the folder that holds the host keys (default: keys/)
`;

function read(): { port: number; host: string } {
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
