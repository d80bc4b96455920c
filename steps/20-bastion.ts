// Step 20, built on step 14: a bastion. ssh -A lands you on the server behind it, logged in there by your own
// agent; every session is recorded, and a web page plays the recordings back.
// Run: npx tsx <this file> (and step 14 on port 2023)   Connect: ssh -A -p 2022 alice@localhost (step 09's key)
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import ssh2 from 'ssh2';
import type { ClientChannel, PseudoTtyInfo, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { keyMayLogIn } from '../shared/login/key-login.ts';
import { hostKeyProblem } from '../shared/login/known-hosts.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { setClientEnv } from '../shared/channels/client-env.ts';
import { target } from '../shared/core/options.ts';
import { ForwardedAgent } from '../shared/channels/forwarded-agent.ts';
import { connectOnward, endOnward } from '../shared/channels/onward-logins.ts';
import { recordingsFull, startRecording } from '../shared/channels/session-recording.ts';
import { serveRecordings } from '../shared/channels/recordings-page.ts';

const { Client, Server } = ssh2;

/** Tells `ssh` how the program ended, by its status or its signal, and closes the channel. */
function ended(channel: ServerChannel, status: number | null, signal: string | null): void {
  if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '');
  else channel.exit(status ?? 0);
  channel.end();
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  // The user's own agent, once they forward it (ssh -A): as sshd does, one for the connection, asked for by a session.
  let agent: ForwardedAgent | undefined;
  client.on('authentication', (ctx) => {
    if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) return (user = ctx.username, ctx.accept());
    // The inner server takes keys alone, so the bastion does too: a password here would open nothing there.
    if (ctx.method === 'password') log(info, `password refused for ${ctx.username}: this step takes keys alone`);
    ctx.reject(['publickey']);
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    let terminal: PseudoTtyInfo | undefined; // the terminal the client asked for, if any
    const env: Record<string, string> = {};
    // The session on the inner server, once there is one, and its recording.
    let inner: ClientChannel | undefined;
    let recording: ReturnType<typeof startRecording> | undefined;
    session.on('pty', (accept, reject, info) => {
      terminal = info;
      accept?.(); // undefined when the client wants no reply
    });
    session.on('auth-agent', (accept) => {
      agent ??= new ForwardedAgent(client);
      accept?.();
    });
    session.on('env', (accept, reject, { key, val }) => {
      // LANG and LC_* alone, as sshd's AcceptEnv, passed on to the inner server; a few, and short.
      if (setClientEnv(env, key, val)) accept?.();
      else reject?.();
    });
    session.on('window-change', (accept, reject, { cols, rows, width, height }) => {
      accept?.();
      if (terminal) [terminal.cols, terminal.rows] = [cols, rows];
      inner?.setWindow(rows, cols, height, width);
      recording?.resize(cols, rows);
    });
    session.on('signal', (accept, reject, { name }) => {
      accept?.();
      inner?.signal(name);
    });

    /** Logs the user in to the inner server with their agent, runs `command` (or a shell) there, and joins the two. */
    const run = async (channel: ServerChannel, command?: string) => {
      const newline = terminal ? '\r\n' : '\n';
      const say = (line: string, status: number) => {
        channel.stderr.write(`${line}${newline}`);
        ended(channel, status, null);
      };
      if (!agent) return say(`This bastion logs you in to ${target.shown} with your own key: connect with ssh -A.`, 1);
      // A session that cannot be recorded is not started.
      const full = recordingsFull(user, channel);
      if (full) return (log(info, `${user}'s session refused: ${full}`), say('bastion: no session can be recorded now', 1));
      const connection = new Client();
      let refused: string | undefined; // why the inner server's host key was refused
      // The user has left (the session's end or close, or theirs): so has the inner one, once logged in (see below).
      let left = false;
      const leave = () => ((left = true), client.off('close', leave), endOnward(connection));
      channel.once('finish', leave).once('close', leave);
      client.once('close', leave); // one on the connection for each session, until it is left
      connection.on('error', (err: Error & { level?: string }) => {
        // An agent that fails is logged, and ssh2 goes on without it; once joined, the session's close says the rest.
        if (err.level === 'agent') return log(info, `${user}'s agent failed: ${err.message}`);
        if (inner || left) return;
        const why = refused ?? (err.level !== 'client-authentication' ? `cannot reach ${target.shown}: ${err.message}`
          : agent?.offered === 0 ? `your agent offers no key for ${target.shown} (ssh-add -h may keep yours to other hosts)`
            : `${target.shown} refused ${user} with the keys in your agent`);
        log(info, `${user} → ${target.shown}: ${why}`);
        say(`bastion: ${why}`, 1);
      });
      connection.on('ready', () => {
        const pty = terminal && { ...terminal, cols: terminal.cols || 80, rows: terminal.rows || 24 };
        const opened = (err: Error | undefined, stream: ClientChannel) => {
          if (err) return say(`bastion: ${target.shown} refused the session: ${err.message}`, 1);
          inner = stream;
          recording = startRecording({ user, width: pty?.cols ?? 80, height: pty?.rows ?? 24, term: pty?.term,
            title: `${user}@${target.shown}: ${command ?? 'shell'}`, command }, (message) => log(info, message), channel);
          log(info, `${user} → ${target.shown}, recorded in ${recording.name}: ${command ?? 'shell'}`);
          // Both ways no faster than the other side takes it; the user's EOF is the inner session's EOF.
          stream.on('data', recording.output);
          stream.stderr.on('data', recording.output);
          stream.pipe(channel, { end: false });
          stream.stderr.pipe(channel.stderr, { end: false });
          channel.pipe(stream);
          if (!pty) channel.on('data', recording.input); // no terminal echoes what is typed: it is recorded itself
          let exit: [number | null, string | null] | undefined;
          stream.on('exit', (status: number | null, signal?: string) => (exit = [status, signal ?? null]));
          stream.on('close', () => {
            recording!.end();
            connection.end();
            if (left) return log(info, `${user} left; their session on ${target.shown} ended with it`);
            if (exit) return ended(channel, ...exit);
            log(info, `${user} → ${target.shown}: the connection was lost`);
            say(`bastion: the connection to ${target.shown} was lost`, 255);
          });
        };
        if (command === undefined) connection.shell(pty ?? false, { env }, opened);
        else connection.exec(command, { pty: pty ?? false, env }, opened);
      });
      // The user's own agent signs (the bastion holds no key of theirs); each user's logins go one at a time (shared/).
      const busy = await connectOnward(user, connection, { host: target.host, port: target.port, username: user, agent,
        hostVerifier: (key: Buffer) => !(refused = hostKeyProblem(target.host, target.port, key)) });
      if (busy) return (log(info, `${user}'s session refused: ${busy}`), say(`bastion: ${busy}`, 1));
    };
    session.on('shell', (accept) => run(accept()));
    session.on('exec', (accept, reject, { command }) => run(accept(), command));
  });
});

listen(server);
serveRecordings();
