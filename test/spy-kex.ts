// Loaded before a step with `--import` (see clients.test.ts): prints `key exchange PORT NAME` when a connection
// has agreed on its key exchange, so that a test can see what each client negotiated.
import ssh2 from 'ssh2';
import type { ClientInfo, Connection } from 'ssh2';

// Typed as a plain EventEmitter's emit: ssh2's types list each event on its own.
const emit = ssh2.Server.prototype.emit as (this: ssh2.Server, event: string | symbol, ...args: unknown[]) => boolean;
ssh2.Server.prototype.emit = function (this: ssh2.Server, event: string | symbol, ...args: unknown[]) {
  if (event === 'connection') {
    const [client, info] = args as [Connection, ClientInfo];
    client.on('handshake', (negotiated) => console.log(`key exchange ${info.port} ${negotiated.kex}`));
  }
  return emit.call(this, event, ...args);
};
