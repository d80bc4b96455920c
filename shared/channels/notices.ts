// Step 22's sessions: `ssh -R ...` without -N opens one, in which the step tells the user what became of their
// forwards (where the app is, or why a name was refused), and which stays open, as sish's does, until Ctrl-C.
import type { Connection, ServerChannel } from 'ssh2';

/**
 * Serves `client`'s sessions as notice boards, and returns the function that tells each of them a line: those
 * told before a session opens are shown when it does (the first 100). Ctrl-C in a session ends it, and ssh with it.
 */
export function notices(client: Connection): (line: string) => void {
  const said: string[] = [];
  const sessions = new Set<ServerChannel>();
  client.on('session', (acceptSession) => {
    const session = acceptSession();
    session.on('pty', (accept) => accept?.());
    session.on('shell', (accept) => {
      const channel = accept();
      sessions.add(channel);
      channel.write(said.map((line) => `${line}\r\n`).join(''));
      channel.on('data', (data: Buffer) => data.includes(3) && (channel.exit(0), channel.end()));
      channel.on('close', () => sessions.delete(channel));
    });
  });
  return (line) => {
    if (said.length < 100) said.push(line);
    for (const session of sessions) session.write(`${line}\r\n`);
  };
}
