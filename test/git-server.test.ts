// Step 19, the git server, driven by Debian's git through OpenSSH's ssh, then attacked through ssh2's client.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type ssh2 from 'ssh2';
import { peakDuring, residentMiB, socketOf } from './hostile.ts';
import { commandLine, count, logged, processTree, ssh, ssh2Login, sshEnv, sshOptions, stalled, startStep, temporaryDir, useStep, waitFor } from './helpers.ts';
import { admit, walks } from '../shared/channels/git-quotas.ts';
import { limits } from '../shared/core/options.ts';

const dir = temporaryDir();
const repos = join(dir, 'repos');
const accessFile = join(dir, 'git-access');
const keys = join(dir, 'authorized_keys');
mkdirSync(keys);
// Every git the step runs goes through this one, which notes its arguments: a refused request must note none.
const bin = join(dir, 'bin');
const runs = join(dir, 'runs');
mkdirSync(bin);
writeFileSync(join(bin, 'git'), `#!/bin/sh\necho "$*" >> '${runs}'\nexec /usr/bin/git "$@"\n`, { mode: 0o755 });
writeFileSync(runs, '');
// The readers' side: a home with a git identity, ssh with the test's options and the password from SSH_ASKPASS.
const home = join(dir, 'home');
mkdirSync(home);
writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = Alice\n\temail = alice@example.com\n[init]\n\tdefaultBranch = main\n'
  + '[advice]\n\tdetachedHead = false\n');

/** Runs COMMAND with ssh2's client, sends INPUT and then EOF; resolves at the channel's close. */
function execWithInput(client: ssh2.Client, command: string, input: string | Buffer): Promise<{ code?: number; stderr: string }> {
  return new Promise((resolve, reject) => client.exec(command, (err, channel) => {
    if (err) return reject(err);
    // Listened to at once: a refusal's status and close may come in the same packet as the exec's answer.
    let stderr = '';
    let code: number | undefined;
    channel.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    channel.on('exit', (status: number) => (code = status));
    channel.on('close', () => resolve({ code, stderr }));
    channel.resume();
    channel.end(input);
  }));
}

interface Git { stdout: string; stderr: string; status: number | null }

/** Runs Debian's git with ARGS in `cwd`, as `user` with that user's password, over OpenSSH's ssh. */
async function git(cwd: string, args: string[], password = 'wonderland', extraSsh: string[] = []): Promise<Git> {
  const child = spawn('git', args, {
    cwd,
    env: {
      ...process.env, ...sshEnv(password), HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0',
      GIT_SSH_COMMAND: ['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', ...extraSsh].join(' '),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [status] = await once(child, 'close');
  clearTimeout(timer);
  return { stdout, stderr, status: status as number | null };
}

/** A work tree with one commit of `files`, made with git locally. */
function workTree(files: Record<string, string | Buffer>): string {
  const work = temporaryDir();
  const local = (...args: string[]) => execFileSync('git', args, { cwd: work, env: { ...process.env, HOME: home } });
  local('init', '--quiet');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
  local('add', '.');
  local('commit', '--quiet', '-m', 'first');
  return work;
}

const localGit = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env: { ...process.env, HOME: home }, encoding: 'utf8' }).trim();

/** The git processes below the step's own process. */
function gitChildren(pid: number): number[] {
  return processTree(pid).slice(1).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/comm`, 'utf8').startsWith('git');
    } catch {
      return false;
    }
  });
}

describe('step 19\'s quotas (shared/channels/git-quotas.ts)', () => {
  test('hostile: 30 push requests at once to an owner of 3,000 files walk the folder once, and share what is left', async () => {
    // Each push request walked the owner's whole folder, synchronously: 30,000 refs took some 270 ms a request, and
    // a loop of requests closed at once held every other user up for seconds.
    const dir = temporaryDir();
    const refs = join(dir, 'alice', 'big.git', 'refs', 'heads');
    mkdirSync(refs, { recursive: true });
    for (let i = 0; i < 3000; i++) writeFileSync(join(refs, `b${i}`), `${'0'.repeat(40)}\n`);
    const repository = { owner: 'alice', name: 'big.git', dir: join(dir, 'alice', 'big.git') };
    const before = walks;
    const admitted = await Promise.all(Array.from({ length: 30 }, (_, i) => admit(`user${i}`, repository, true, true)));
    assert.equal(walks - before, 1);
    // Pushes at once share what is left of GIT_MAX_DISK: together they may write no more than it.
    const bounds = admitted.map((release) => (typeof release === 'string' ? assert.fail(release) : release.bound));
    assert.ok(bounds.reduce((a, b) => a + b, 0) <= limits.gitMaxDisk * 1024 * 1024, JSON.stringify(bounds));
    for (const release of admitted) if (typeof release !== 'string') release();
  });
});

describe('step 19: a git server', { timeout: 600_000 }, () => {
  const step = useStep('19-git-server.ts', {
    env: {
      GIT_REPOS_DIR: repos, GIT_ACCESS: accessFile, PATH: `${bin}:${process.env.PATH}`, SSH_AUTHORIZED_KEYS_DIR: keys,
      // Twenty clones at once from one address: more than sshd's defaults let log in at once, and than the step
      // lets one user run (GIT_MAX_RUNNING, 10).
      MAX_STARTUPS: '30', PER_SOURCE_MAX_STARTUPS: '30', GIT_MAX_RUNNING: '20',
    },
  });
  const url = (user: string, path: string) => `ssh://${user}@localhost:${step().port}/${path}`;

  test('push makes a repository, clone gives it back byte for byte, a second commit is pulled', async () => {
    const work = workTree({ 'README': 'Hello, Wonderland\n', 'data.bin': randomBytes(100_000) });
    const pushed = await git(work, ['push', url('alice', 'alice/hello.git'), 'main']);
    assert.equal(pushed.status, 0, pushed.stderr);
    assert.match(pushed.stderr, /^ \* \[new branch\] +main -> main$/m);
    await logged(step(), / alice made the repository alice\/hello\.git$/m);
    assert.ok(existsSync(join(repos, 'alice', 'hello.git', 'HEAD')));
    assert.equal(localGit(join(repos, 'alice', 'hello.git'), 'symbolic-ref', 'HEAD'), 'refs/heads/main');

    const clones = temporaryDir();
    const cloned = await git(clones, ['clone', url('alice', 'alice/hello.git'), 'hello']);
    assert.equal(cloned.status, 0, cloned.stderr);
    const copy = join(clones, 'hello');
    assert.equal(localGit(copy, 'rev-parse', 'HEAD'), localGit(work, 'rev-parse', 'HEAD'));
    for (const name of ['README', 'data.bin']) assert.ok(readFileSync(join(copy, name)).equals(readFileSync(join(work, name))));

    writeFileSync(join(work, 'README'), 'Hello again\n');
    localGit(work, 'commit', '--quiet', '-am', 'second');
    const second = await git(work, ['push', url('alice', 'alice/hello.git'), 'main']);
    assert.equal(second.status, 0, second.stderr);
    const pulled = await git(copy, ['pull', '--quiet', '--ff-only']);
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.equal(readFileSync(join(copy, 'README'), 'utf8'), 'Hello again\n');
    assert.equal(localGit(copy, 'rev-parse', 'HEAD'), localGit(work, 'rev-parse', 'HEAD'));
    assert.equal(localGit(join(repos, 'alice', 'hello.git'), 'fsck', '--strict'), '');
  });

  test('shallow clone, ls-remote and archive --remote, with protocol version 2', async () => {
    const work = workTree({ 'a.txt': 'one\n' });
    writeFileSync(join(work, 'a.txt'), 'two\n');
    localGit(work, 'commit', '--quiet', '-am', 'second');
    assert.equal((await git(work, ['push', url('alice', 'alice/tools.git'), 'main'])).status, 0);

    const clones = temporaryDir();
    const shallow = await git(clones, ['clone', '--depth', '1', url('alice', 'alice/tools.git'), 'tools']);
    assert.equal(shallow.status, 0, shallow.stderr);
    assert.equal(localGit(join(clones, 'tools'), 'rev-list', '--count', 'HEAD'), '1');
    assert.equal(readFileSync(join(clones, 'tools', 'a.txt'), 'utf8'), 'two\n');

    const head = localGit(work, 'rev-parse', 'HEAD');
    const listed = await git(clones, ['ls-remote', url('alice', 'alice/tools.git')]);
    assert.equal(listed.status, 0, listed.stderr);
    assert.equal(listed.stdout, `${head}\tHEAD\n${head}\trefs/heads/main\n`);

    const archive = join(clones, 'tools.tar');
    const archived = await git(clones, ['archive', `--remote=${url('alice', 'alice/tools.git')}`, '--output', archive, 'main']);
    assert.equal(archived.status, 0, archived.stderr);
    assert.equal(execFileSync('tar', ['-xOf', archive, 'a.txt'], { encoding: 'utf8' }), 'two\n');

    // git asks for version 2 with GIT_PROTOCOL; the server's first line in it is "version 2".
    const v2 = spawn('git', ['-c', 'protocol.version=2', 'ls-remote', url('alice', 'alice/tools.git')], {
      env: { ...process.env, ...sshEnv('wonderland'), HOME: home, GIT_TRACE_PACKET: '1',
        GIT_SSH_COMMAND: ['ssh', ...sshOptions, '-o', 'LogLevel=ERROR'].join(' ') },
    });
    let trace = '';
    v2.stderr.on('data', (chunk) => (trace += chunk));
    v2.stdout.resume();
    const [status] = await once(v2, 'close');
    assert.equal(status, 0, trace);
    assert.match(trace, /< version 2$/m);
  });

  test('the scp-like address with -p in GIT_SSH_COMMAND, and a key instead of a password', async () => {
    const keyDir = temporaryDir();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'id')]);
    writeFileSync(join(keys, 'carol'), readFileSync(join(keyDir, 'id.pub')));
    // carol has no password in the demo file: her key alone logs her in; BatchMode: no prompt would be answered.
    const keyed = ['-p', String(step().port), '-i', join(keyDir, 'id'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'];
    const work = workTree({ 'c.txt': 'carol\n' });
    const pushed = await git(work, ['push', 'carol@localhost:carol/notes.git', 'main'], '', keyed);
    assert.equal(pushed.status, 0, pushed.stderr);
    const clones = temporaryDir();
    const cloned = await git(clones, ['clone', '--quiet', 'carol@localhost:carol/notes.git'], '', keyed);
    assert.equal(cloned.status, 0, cloned.stderr);
    assert.equal(readFileSync(join(clones, 'notes', 'c.txt'), 'utf8'), 'carol\n');
  });

  test('bob may not read or push alice\'s repository, until the access file says so', async () => {
    const work = workTree({ 'b.txt': 'alice\'s\n' });
    assert.equal((await git(work, ['push', url('alice', 'alice/private.git'), 'main'])).status, 0);
    const before = readFileSync(runs, 'utf8');
    const clones = temporaryDir();
    const notFound = await git(clones, ['clone', url('bob', 'alice/private.git')], 'builder');
    assert.notEqual(notFound.status, 0);
    assert.match(notFound.stderr, /^repository alice\/private\.git not found$/m);
    const pushed = await git(work, ['push', url('bob', 'alice/private.git'), 'main'], 'builder');
    assert.match(pushed.stderr, /^repository alice\/private\.git not found$/m);
    // Nor may bob make a repository under alice's name.
    const made = await git(work, ['push', url('bob', 'alice/new.git'), 'main'], 'builder');
    assert.match(made.stderr, /^repository alice\/new\.git not found$/m);
    assert.equal(existsSync(join(repos, 'alice', 'new.git')), false);
    assert.equal(readFileSync(runs, 'utf8'), before, 'a refused request ran git');

    // Public: bob reads, but may not push.
    writeFileSync(accessFile, '# who may read and push\nalice/private.git public\n');
    assert.equal((await git(clones, ['clone', '--quiet', url('bob', 'alice/private.git')], 'builder')).status, 0);
    assert.equal(readFileSync(join(clones, 'private', 'b.txt'), 'utf8'), 'alice\'s\n');
    writeFileSync(join(clones, 'private', 'b.txt'), 'bob was here\n');
    localGit(join(clones, 'private'), 'commit', '--quiet', '-am', 'bob');
    const denied = await git(join(clones, 'private'), ['push', 'origin', 'main'], 'builder');
    assert.notEqual(denied.status, 0);
    assert.match(denied.stderr, /^bob may not push to alice\/private\.git$/m);
    assert.equal(localGit(join(repos, 'alice', 'private.git'), 'rev-parse', 'main'), localGit(work, 'rev-parse', 'HEAD'));

    // A collaborator pushes; a malformed line is skipped with a log line naming it.
    writeFileSync(accessFile, '# who may read and push\nalice/private.git bob\nnot a line\n');
    const collaborator = await git(join(clones, 'private'), ['push', 'origin', 'main'], 'builder');
    assert.equal(collaborator.status, 0, collaborator.stderr);
    assert.equal(localGit(join(repos, 'alice', 'private.git'), 'rev-parse', 'main'),
      localGit(join(clones, 'private'), 'rev-parse', 'HEAD'));
    await logged(step(), /git-access line 3: skipped, not OWNER\/NAME\.git followed by public or user names$/m);
    writeFileSync(accessFile, '');
  });

  test('anything but git\'s three requests is refused, with nothing run', async () => {
    const before = readFileSync(runs, 'utf8');
    const refusals: [string, string][] = [
      ['ls /', 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path'],
      ["git-upload-pack '../../etc'", '"../../etc" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack '/etc'", '"/etc" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack 'a; touch x'", '"a; touch x" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack '/alice/../alice/hello.git'", '"/alice/../alice/hello.git" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack 'alice/hello'", '"alice/hello" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack '/alice/.git'", '"/alice/.git" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack '-alice/x.git'", '"-alice/x.git" is not a repository\'s name: they are OWNER/NAME.git'],
      ["git-upload-pack 'alice/hello.git' 'more'", 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path'],
      ['git-upload-pack alice/hello.git', 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path'],
      ["git-upload-pack 'alice/hello.git'; touch x", 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path'],
      ["git upload-pack 'alice/hello.git'", 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path'],
      ["git-shell 'alice/hello.git'", 'this server runs git alone: git-upload-pack, git-receive-pack or git-upload-archive, and a path'],
      ["git-upload-pack 'alice/x'\\''.git'", '"alice/x\'.git" is not a repository\'s name: they are OWNER/NAME.git'],
    ];
    for (const [command, message] of refusals) {
      const result = await ssh(step().port, 'alice', 'wonderland', [command]);
      assert.deepEqual([result.stderr, result.stdout, result.status], [`${message}\n`, '', 1], command);
    }
    const shell = await ssh(step().port, 'alice', 'wonderland', ['-T']);
    assert.deepEqual([shell.stderr, shell.status], ['Hi alice! This server hosts git repositories, and gives no shell.\n', 1]);
    // A NUL byte, which OpenSSH cannot send.
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    const nul = await execWithInput(client, "git-upload-pack 'alice/hello.git\0x'", '');
    client.end();
    assert.equal(nul.code, 1);
    assert.match(nul.stderr, /is not a repository's name/);
    assert.equal(readFileSync(runs, 'utf8'), before, 'a refused request ran git');
    assert.equal(existsSync(join(repos, 'x')), false);
  });

  test('symbolic links in the repositories\' folder lead nowhere', async () => {
    const outside = temporaryDir();
    execFileSync('git', ['init', '--quiet', '--bare', join(outside, 'secret.git')]);
    mkdirSync(join(repos, 'dave'), { recursive: true });
    symlinkSync(join(outside, 'secret.git'), join(repos, 'dave', 'linked.git'));
    symlinkSync(outside, join(repos, 'erin'));
    writeFileSync(accessFile, 'dave/linked.git public\nerin/secret.git public\n');
    const before = readFileSync(runs, 'utf8');
    for (const path of ['dave/linked.git', 'erin/secret.git']) {
      const result = await ssh(step().port, 'alice', 'wonderland', [`git-upload-pack '${path}'`]);
      assert.deepEqual([result.stderr, result.status], [`repository ${path} not found\n`, 1]);
    }
    assert.equal(readFileSync(runs, 'utf8'), before, 'a refused request ran git');
    writeFileSync(accessFile, '');
  });

  test('a push of garbage is refused, the repository intact and the step serving', async () => {
    const work = workTree({ 'g.txt': 'good\n' });
    assert.equal((await git(work, ['push', url('alice', 'alice/garbage.git'), 'main'])).status, 0);
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    for (let i = 0; i < 5; i++) {
      const garbage = i % 2 ? randomBytes(200_000) : Buffer.concat([Buffer.from('0000'), randomBytes(50_000)]);
      const { code } = await execWithInput(client, "git-receive-pack 'alice/garbage.git'", garbage);
      assert.ok(code !== 0 || i % 2 === 0, `garbage push ${i} exited ${code}`);
    }
    client.end();
    assert.equal(localGit(join(repos, 'alice', 'garbage.git'), 'rev-parse', 'main'), localGit(work, 'rev-parse', 'HEAD'));
    assert.equal(localGit(join(repos, 'alice', 'garbage.git'), 'fsck', '--strict'), '');
    assert.equal((await git(temporaryDir(), ['ls-remote', url('alice', 'alice/garbage.git')])).status, 0);
  });

  test('a push above GIT_MAX_PUSH is refused and changes nothing', async () => {
    // Started for this test alone, with a limit of 1 MiB.
    const small = await startStep('19-git-server.ts', { env: { GIT_REPOS_DIR: repos, GIT_ACCESS: accessFile, GIT_MAX_PUSH: '1' } });
    try {
      const smallUrl = `ssh://alice@localhost:${small.port}/alice/limited.git`;
      const work = workTree({ 'small.txt': 'small\n' });
      assert.equal((await git(work, ['push', smallUrl, 'main'])).status, 0);
      const first = localGit(work, 'rev-parse', 'HEAD');
      writeFileSync(join(work, 'big.bin'), randomBytes(3 * 1024 * 1024));
      localGit(work, 'add', 'big.bin');
      localGit(work, 'commit', '--quiet', '-m', 'big');
      const big = await git(work, ['push', smallUrl, 'main']);
      assert.notEqual(big.status, 0);
      assert.match(big.stderr, /pack exceeds maximum allowed size/);
      assert.equal(localGit(join(repos, 'alice', 'limited.git'), 'rev-parse', 'main'), first);
    } finally {
      await small.stop();
    }
  });

  test('hostile: a small pack of near-copies, which git would unpack a hundredfold, is kept as it came', async () => {
    const boundedRepos = temporaryDir();
    const bounded = await startStep('19-git-server.ts', { env: { GIT_REPOS_DIR: boundedRepos, GIT_ACCESS: accessFile, GIT_MAX_DISK: '8' } });
    try {
      // 30 files of 1 MiB, each the same random bytes but for 8 of them: a pack of about 1 MiB, 30 MiB unpacked.
      const base = randomBytes(1024 * 1024);
      const files = Object.fromEntries(Array.from({ length: 30 }, (_, i) => {
        const copy = Buffer.from(base);
        copy.write(String(i).padStart(8, '0'), i * 1000);
        return [`copy${i}.bin`, copy];
      }));
      const pushed = await git(workTree(files), ['push', `ssh://alice@localhost:${bounded.port}/alice/copies.git`, 'main']);
      assert.equal(pushed.status, 0, pushed.stderr);
      // Unpacked (git's default for fewer than 100 objects), the repository held some 30 MiB, past GIT_MAX_DISK's 8.
      const held = Number(execFileSync('du', ['-sb', join(boundedRepos, 'alice', 'copies.git')], { encoding: 'utf8' }).split('\t')[0]);
      assert.ok(held < 4 * 1024 * 1024, `the repository holds ${held} bytes`);
    } finally {
      await bounded.stop();
    }
  });

  test('quotas: repositories per user, git programs per user and in all, bytes per user; each refusal says which', async () => {
    const boundedRepos = temporaryDir();
    const bounded = await startStep('19-git-server.ts', { env: { GIT_REPOS_DIR: boundedRepos, GIT_ACCESS: accessFile,
      GIT_MAX_REPOS: '3', GIT_MAX_RUNNING: '2', GIT_MAX_RUNNING_ALL: '3', GIT_MAX_DISK: '1' } });
    const [bob, alice] = [await ssh2Login(bounded.port, 'bob', 'builder'), await ssh2Login(bounded.port, 'alice', 'wonderland')];
    try {
      // (receive-packs alone: a new repository's `git init` is a git process too, and comes before its receive-pack)
      const receivePacks = () => gitChildren(bounded.pid).filter((pid) => commandLine(pid).includes('receive-pack')).length;
      // Requests that come together are counted together: four at once, to new repositories, and two of them run.
      const together = await Promise.all([0, 1, 2, 3].map((i) => new Promise<{ channel: ssh2.ClientChannel; said: () => string }>(
        (resolve, reject) => alice.exec(`git-receive-pack 'alice/p${i}.git'`, (err, channel) => {
          if (err) return reject(err);
          let said = '';
          channel.stderr.on('data', (chunk: Buffer) => (said += chunk));
          channel.resume();
          resolve({ channel, said: () => said });
        }))));
      await waitFor('two refused', () => together.filter(({ said }) => said().includes('(GIT_MAX_RUNNING)')).length === 2 || undefined);
      await waitFor('two running', () => receivePacks() === 2 || undefined);
      for (const { channel } of together) channel.end();
      await waitFor('none running', () => gitChildren(bounded.pid).length === 0 || undefined);
      // Bare requests, no git client and no pack: each makes a repository, until bob has three.
      for (let i = 0; i < 3; i++) assert.notEqual((await execWithInput(bob, `git-receive-pack 'bob/r${i}.git'`, '')).code, undefined);
      assert.deepEqual(await execWithInput(bob, "git-receive-pack 'bob/r3.git'", ''), { code: 1,
        stderr: 'bob has 3 repositories, the most one user may have (GIT_MAX_REPOS): remove one first\n' });
      await logged(bounded, /bob\/r3\.git: bob has 3 repositories/);
      // Two receive-packs of bob's that wait for their input: a third of his is refused; alice's first is served,
      // and then, three running in all, her second is refused too.
      const held = await Promise.all([0, 1].map((i) => new Promise<ssh2.ClientChannel>((resolve, reject) =>
        bob.exec(`git-receive-pack 'bob/r${i}.git'`, (err, channel) => (err ? reject(err) : resolve(channel))))));
      for (const channel of held) channel.resume();
      await waitFor('bob\'s two git programs', () => receivePacks() === 2 || undefined);
      assert.deepEqual(await execWithInput(bob, "git-upload-pack 'bob/r2.git'", ''), { code: 1,
        stderr: 'bob runs 2 git programs already, the most one user may (GIT_MAX_RUNNING): try again once one ends\n' });
      const served = new Promise<ssh2.ClientChannel>((resolve, reject) =>
        alice.exec("git-receive-pack 'alice/one.git'", (err, channel) => (err ? reject(err) : resolve(channel))));
      (await served).resume();
      await waitFor('three git programs', () => receivePacks() === 3 || undefined);
      assert.deepEqual(await execWithInput(alice, "git-upload-pack 'alice/one.git'", ''), { code: 1,
        stderr: 'this server runs 3 git programs already (GIT_MAX_RUNNING_ALL): try again soon\n' });
      for (const channel of [...held, await served]) channel.end();
      await waitFor('none running', () => gitChildren(bounded.pid).length === 0 || undefined);
      // GIT_MAX_DISK, 1 MiB: a pack larger than what is left is refused by git itself; once alice's repositories
      // hold 1 MiB (here a file put there), her pushes are refused before git runs, and bob's are not.
      const work = workTree({ 'big.bin': randomBytes(2 * 1024 * 1024) });
      const over = await git(work, ['push', `ssh://alice@localhost:${bounded.port}/alice/one.git`, 'main']);
      assert.match(over.stderr, /pack exceeds maximum allowed size/);
      writeFileSync(join(boundedRepos, 'alice', 'one.git', 'filler'), randomBytes(1024 * 1024));
      const refused = await git(work, ['push', `ssh://alice@localhost:${bounded.port}/alice/one.git`, 'main']);
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /^alice's repositories hold 1 MiB, the most one user may keep \(GIT_MAX_DISK\)$/m);
      const small = workTree({ 'small.txt': 'small\n' });
      assert.equal((await git(small, ['push', `ssh://bob@localhost:${bounded.port}/bob/r0.git`, 'main'], 'builder')).status, 0);
    } finally {
      bob.end();
      alice.end();
      await bounded.stop();
    }
  });

  test('twenty clones at once all get the repository, and bob is served meanwhile', async () => {
    const work = workTree({ 'many.bin': randomBytes(2 * 1024 * 1024) });
    assert.equal((await git(work, ['push', url('alice', 'alice/many.git'), 'main'])).status, 0);
    const head = localGit(work, 'rev-parse', 'HEAD');
    const clones = temporaryDir();
    const all = Array.from({ length: 20 }, (_, i) => git(clones, ['clone', '--quiet', url('alice', 'alice/many.git'), `c${i}`]));
    const bob = await git(clones, ['ls-remote', url('bob', 'alice/many.git')], 'builder');
    const results = await Promise.all(all);
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, 0, result.stderr);
      assert.equal(localGit(join(clones, `c${i}`), 'rev-parse', 'HEAD'), head);
    }
    // bob was answered (he may not read it: not found), while the clones ran.
    assert.match(bob.stderr, /^repository alice\/many\.git not found$/m);
  });

  test('a client that stops reading holds the step\'s memory down, and its git ends with the connection', async () => {
    // 40 MiB that does not compress, in one commit.
    const work = workTree({ 'big.bin': randomBytes(40 * 1024 * 1024) });
    const rss = residentMiB(step().pid);
    const peakPush = await peakDuring(step().pid, async () => {
      const pushed = await git(work, ['push', url('alice', 'alice/big.git'), 'main']);
      assert.equal(pushed.status, 0, pushed.stderr);
    });
    assert.ok(peakPush - rss < 60, `a 40 MiB push grew the step by ${peakPush - rss} MiB`);

    // An upload-pack asked for everything (protocol version 0: the client's wants, then done), never read.
    const head = localGit(work, 'rev-parse', 'HEAD');
    const client = await ssh2Login(step().port, 'alice', 'wonderland');
    const channel = await new Promise<import('ssh2').ClientChannel>((resolve, reject) =>
      client.exec("git-upload-pack '/alice/big.git'", (err, ch) => (err ? reject(err) : resolve(ch))));
    const line = (text: string) => `${(text.length + 4).toString(16).padStart(4, '0')}${text}`;
    channel.write(`${line(`want ${head}\n`)}0000${line('done\n')}`);
    channel.pause();
    const before = residentMiB(step().pid);
    // Until upload-pack itself waits, a few MiB into the pack: the step stopped reading it once ssh2 held back.
    const uploadPack = await waitFor('the clone\'s upload-pack', () => gitChildren(step().pid)
      .find((pid) => / upload-pack /.test(commandLine(pid))));
    const written = await stalled('upload-pack to stop writing', uploadPack, 2 ** 20, 60_000);
    assert.ok(written < 40 * 2 ** 20, `upload-pack wrote ${written} bytes of a 40 MiB pack before it had to wait`);
    const grown = residentMiB(step().pid) - before;
    assert.ok(grown < 20, `a clone nobody reads grew the step by ${grown} MiB`);
    const children = gitChildren(step().pid);
    assert.ok(children.length > 0, 'no git process served the clone');
    socketOf(client).destroy(); // the connection drops, without a word
    await waitFor('the clone\'s git processes to end', () => (children.every((pid) => !existsSync(`/proc/${pid}`)) || undefined));
    // And one that never sends: a push that waits for its first line.
    const waiting = await ssh2Login(step().port, 'alice', 'wonderland');
    await new Promise<void>((resolve, reject) =>
      waiting.exec("git-receive-pack 'alice/big.git'", (err, ch) => (err ? reject(err) : (ch.resume(), resolve()))));
    const pushers = await waitFor('the push\'s git', () => { const found = gitChildren(step().pid); return found.length ? found : undefined; });
    socketOf(waiting).destroy();
    await waitFor('the push\'s git processes to end', () => (pushers.every((pid) => !existsSync(`/proc/${pid}`)) || undefined));
    assert.deepEqual(gitChildren(step().pid), []);
    assert.equal(localGit(join(repos, 'alice', 'big.git'), 'rev-parse', 'main'), head);
    assert.ok(count(step(), / connection closed$/gm) > 0);
  });
});
