// Step 19, built on step 09: a git server. Push to make a repository, clone it back; no shell for anyone.
// Run: npx tsx <this file>     Push: git push ssh://alice@localhost:2022/alice/hello.git main     Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import { spawn } from 'node:child_process';
import ssh2 from 'ssh2';
import type { ClientInfo, PublicKeyAuthContext, ServerChannel } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { authorizedKeys } from '../shared/login/authorized-keys.ts';
import { fingerprint } from '../shared/core/fingerprint.ts';
import { access, create, exists, gitRequest, pointHeadAtABranch, writes } from '../shared/channels/git-repositories.ts';
import { admit } from '../shared/channels/git-quotas.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** Ends the channel with a message on its standard error and exit status 1: nothing was run. */
function refuse(channel: ServerChannel, message: string): void {
  channel.stderr.write(`${message}\n`);
  channel.exit(1);
  channel.end();
}

/**
 * Runs the git program that serves `command` (`git-upload-pack '/alice/hello.git'`) for `user` on the channel, if
 * the user may: a clone, fetch or archive needs the right to read, a push the right to push, and a push to a
 * repository of one's own that does not exist yet makes it. The program's input, output, errors and exit status
 * are the channel's; it ends when the channel does, however the connection ends.
 */
async function serveGit(channel: ServerChannel, command: string, user: string, env: Record<string, string>,
  info: ClientInfo): Promise<void> {
  const request = gitRequest(command);
  if ('error' in request) return refuse(channel, request.error);
  const { service, repository } = request;
  const shownName = `${repository.owner}/${repository.name}`;
  const found = exists(repository);
  const may = access(user, repository);
  // A repository someone may not read is, to them, one that does not exist: its name tells them nothing.
  if ((!found || may === 'none') && !(writes(service) && user === repository.owner)) {
    return refuse(channel, `repository ${shownName} not found`);
  }
  if (writes(service) && may !== 'push') return refuse(channel, `${user} may not push to ${shownName}`);
  // What one user may keep and run is bounded: repositories, bytes, git programs at once (theirs, and everyone's),
  // each program counted from here until it ends, or its channel closes.
  let closed = false;
  channel.on('close', () => (closed = true));
  const admitted = await admit(user, repository, writes(service), found);
  if (typeof admitted === 'string') return (log(info, `${shownName}: ${admitted}`), refuse(channel, admitted));
  channel.on('close', admitted);
  if (closed) return admitted(); // the client left while its request was being counted
  if (!found) {
    await create(repository);
    log(info, `${user} made the repository ${shownName}`);
  }
  if (closed) return; // the client left while the repository was being made: nothing to run for it
  // An argument array, never a shell. The environment: the server's PATH and HOME, and the client's GIT_PROTOCOL
  // (version 2) if sent. A pack is kept as it came (unpackLimit 1): unpacked, near-copies grow a hundredfold.
  const args = service === 'git-receive-pack'
    ? ['-c', `receive.maxInputSize=${admitted.bound}`, '-c', 'receive.unpackLimit=1', 'receive-pack', repository.dir]
    : service === 'git-upload-pack' ? ['upload-pack', '--strict', repository.dir] : ['upload-archive', repository.dir];
  const child = spawn('git', args, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...env } });
  // Each way, no faster than the other side reads: pipe() waits for 'drain'.
  channel.pipe(child.stdin);
  child.stdout.pipe(channel, { end: false });
  child.stderr.pipe(channel.stderr, { end: false });
  child.stdin.on('error', () => {}); // the program may end before the client has sent all
  channel.on('close', () => child.kill('SIGKILL')); // the client went: so does the program (a no-op once it ended)
  child.on('error', (err) => log(info, `git ${service.slice(4)} for ${shownName} failed: ${err.message}`));
  child.on('close', async (code) => {
    admitted(); // no longer running
    if (writes(service) && code === 0) await pointHeadAtABranch(repository).catch(() => {});
    if (channel.writable) {
      channel.exit(code ?? 1);
      channel.end();
    }
  });
}

/** Whether the key is listed for the user and, once signed, whether the signature holds; logs why it is not. */
function keyMayLogIn(ctx: PublicKeyAuthContext, info: ClientInfo): boolean {
  const refuse = (why: string) => {
    log(info, `key ${fingerprint(ctx.key.data)} refused for ${ctx.username}: ${why}`);
    return false;
  };
  const listed = authorizedKeys(ctx.username);
  const key = listed.find((each) => each.getPublicSSH().equals(ctx.key.data));
  if (!key) return refuse(listed.length ? 'not in the user\'s authorized_keys' : 'the user has no authorized_keys');
  // RSA must sign with SHA-2, as OpenSSH 8.8+ insists: the listed key's type decides, not what the client claims.
  if (key.type === 'ssh-rsa' && ctx.hashAlgo !== 'sha256' && ctx.hashAlgo !== 'sha512') {
    return refuse('an RSA signature with SHA-1');
  }
  if (!ctx.signature || !ctx.blob) return true; // first round: the client asks whether this key would do
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true || refuse('the signature does not hold');
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      ctx.accept();
    } else if (ctx.method === 'publickey' && keyMayLogIn(ctx, info)) { // unsigned, accept() says "this key would do"
      user = ctx.username;
      ctx.accept();
    } else {
      ctx.reject(['publickey', 'password']); // the ways to log in that are left
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    const env: Record<string, string> = {};
    // git asks for protocol version 2 with GIT_PROTOCOL (ssh's SendEnv); no other variable is taken.
    session.on('env', (accept, reject, { key, val }) => {
      if (key === 'GIT_PROTOCOL' && /^[\w.:=-]{1,100}$/.test(val)) {
        env.GIT_PROTOCOL = val;
        accept?.();
      } else {
        reject?.();
      }
    });
    session.on('shell', (acceptShell) => {
      refuse(acceptShell(), `Hi ${user}! This server hosts git repositories, and gives no shell.`);
    });
    session.on('exec', (acceptExec, reject, { command }) => {
      const channel = acceptExec();
      serveGit(channel, command, user, env, info).catch((err: Error) => {
        log(info, `${JSON.stringify(command)} failed: ${err.message}`);
        if (channel.writable) refuse(channel, 'the server could not do that: its log says why');
      });
    });
  });
});

listen(server);
