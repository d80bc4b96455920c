// Step 21, built on step 13: a fleet. Its machines share their room, who is online and their limits in a store.
// Run: STORE_URL=redis://127.0.0.1:6379 npx tsx <this file>   Connect: ssh -p 2022 alice@localhost   Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import ssh2 from 'ssh2';
import type { ClientInfo, PseudoTtyInfo, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { LineEditor } from '../shared/channels/line-editor.ts';
import { mayArrive, maySay } from '../shared/channels/chat-rate.ts';
import { beforeStop, listen } from '../shared/server/listen.ts';
import { log, safe } from '../shared/core/log.ts';
import { fleet, limits } from '../shared/core/options.ts';
import { LOGIN_WAIT_MS, Store } from '../shared/core/store.ts';
import { FleetRoom } from '../shared/channels/fleet-room.ts';
import { shareLimits } from '../shared/server/fleet-limits.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** Someone in the room: a name, and a way to show them lines without garbling the line they are typing. */
interface Member {
  name: string;
  show(lines: string[]): void;
  stop(): void;
}

/** The store every machine of the fleet shares; the limits of every connection are kept in it from now on. */
const store = shareLimits(new Store(fleet.storeUrl));
/** The room's people on this machine. What anyone says, on any machine, comes from the store, and is shown to each. */
const here = new Set<Member>();
const room = new FleetRoom(store, fleet.machine, (line) => here.forEach((member) => member.show([line])));
beforeStop(() => (here.forEach((member) => member.stop()), store.settled())); // all leave, as by /quit, and are told so

/** Who is at the other end of a channel: the user, their terminal, their address, and how to disconnect them. */
interface Caller {
  user: string;
  terminal: PseudoTtyInfo;
  info: ClientInfo;
  disconnect: () => void;
}

/** The chat protocol: one member of the room, typing on a terminal `terminal.cols` wide. */
function chatProtocol(channel: ServerChannel, { user, terminal, info, disconnect }: Caller): void {
  // Other people's bytes never reach a terminal as they are: control characters and escape sequences are shown
  // escaped (\x1b), so no one can move your cursor, clear your screen or retitle your window.
  const name = safe(user);
  const width = () => terminal.cols || 80; // 0 when the client does not know (ssh -tt with input piped in)
  const editor = new LineEditor(`${name}> `, () => Math.min(limits.chatLineMax, width() - name.length - 3));
  const member: Member = {
    name,
    show: (lines) => {
      // A client that does not read would have everything said pile up here: past the bound, it is let go.
      if (channel.writableLength > limits.chatQueueMax) {
        log(info, `${name} is not reading: disconnected (CHAT_QUEUE_MAX)`);
        leave();
        return disconnect();
      }
      channel.write(editor.above(lines, width())); // cut into rows for this reader's terminal
    },
    stop: () => (member.show([`* ${fleet.machine} is stopping: connect again to go on`]), quit()),
  };
  const leave = () => {
    if (!here.delete(member)) return;
    departed(); // off the fleet's list of who is online
    room.send({ kind: 'left', name: user });
  };
  const quit = () => {
    if (!here.has(member)) return; // gone already
    leave();
    channel.write('\r\n');
    channel.exit(0);
    channel.end();
  };
  // A message, or a /who, is a call to the store: CHAT_RATE of them in 10 seconds, however many lines were pasted.
  const ask = (call: () => unknown) => (maySay(user) ? call()
    : member.show([`* slow down: at most ${limits.chatRate} messages in 10 seconds (CHAT_RATE)`]));

  here.add(member);
  const departed = room.arrive(user);
  void room.who(LOGIN_WAIT_MS).then(({ count, notes }) => { // a login waits for the store 0.1 s at most
    member.show([`Welcome, ${name}, on ${fleet.machine}. ${count} here; /who says who, /quit (or Ctrl-C) leaves.`, ...notes]);
    if (here.has(member)) room.send({ kind: 'joined', name: user }); // to everyone, this machine's people too
  });
  channel.on('data', (data: Buffer) => {
    const { results, echo } = editor.feed(data);
    for (const result of results) {
      if (result && ('leave' in result || result.line === '/quit')) return quit();
      if (result?.line === '/who') ask(() => room.who().then(({ line, notes }) => member.show([line, ...notes])));
      else if (result?.line.trim()) ask(() => room.send({ kind: 'said', name: user, text: result.line }));
    }
    // A client that does not read even its own echo is read no more: its window closes, and it waits.
    if (!channel.write(echo)) (channel.pause(), channel.once('drain', () => channel.resume()));
  });
  channel.on('end', quit); // the client's input ended (piped in, say): as Ctrl-D
  channel.on('close', leave);
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      ctx.accept();
    } else {
      ctx.reject(['password']); // the ways to log in that are left
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    let terminal: PseudoTtyInfo | undefined;
    session.on('pty', (accept, reject, info) => {
      terminal = info;
      accept?.(); // undefined when the client wants no reply
    });
    session.on('window-change', (accept, reject, { cols }) => {
      accept?.();
      if (terminal) terminal.cols = cols;
    });
    session.on('shell', (acceptShell) => {
      const channel = acceptShell();
      // Each arrival is announced to everyone: sessions opened and closed in a loop are CHAT_RATE arrivals at most.
      const refused = !terminal ? 'The chat room needs a terminal, to edit your line as you type: connect from one, '
        + 'without -T (ssh -tt forces one).\n'
        : mayArrive(user) ? '' : `* slow down: at most ${limits.chatRate} arrivals in 10 seconds (CHAT_RATE)\r\n`;
      if (!terminal || refused) {
        channel.stderr.write(refused);
        channel.exit(1);
        return void channel.end();
      }
      // Everything else the session does is the protocol's business.
      chatProtocol(channel, { user, terminal, info, disconnect: () => client.end() });
    });
  });
});

listen(server);
