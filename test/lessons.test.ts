// Every transcript in the lessons (and the README's), played as a reader plays it: the step started, a shell in a
// real 100x30 terminal, the commands typed, the password typed at each prompt, then compared with the screen. The
// ports a lesson names are played by free ones: the shell's ssh, sftp, scp and curl put them in place of 2022 and the rest.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { debianTesting, debianTestingCommand, debianTestingHome, freePort, root, startStep, Terminal, waitFor } from './helpers.ts';

interface Transcript {
  page: string;
  /** The commands of the page's `<!-- second terminal -->` block, but the web server it starts (played by the test's). */
  before: string[];
  step: string;
  /** The `$ ` lines: what the reader types at the shell. */
  commands: string[];
  /** What the reader presses once the last command runs (tmux key names, or "quoted" text). */
  keys: string[];
  expected: string[];
}

/** The console blocks of a page: in a lesson they play its own step; in the README, the step a `run: NN` names. */
function transcripts(page: string): Transcript[] {
  const text = readFileSync(join(root, page), 'utf8');
  const own = /^steps\/(\d\d)-/.exec(page)?.[1];
  const second = /^<!-- second terminal -->\n```\n([\s\S]*?)^```$/m.exec(text)?.[1] ?? '';
  const before = second.split('\n').filter((line) => line !== '' && !line.startsWith('python3 -m http.server'));
  const found: Transcript[] = [];
  for (const m of text.matchAll(/^(?:<!-- (.*?) -->\n)?```console\n([\s\S]*?)^```$/gm)) {
    const marker = m[1] ?? '';
    const step = /^run: (\d\d)/.exec(marker)?.[1] ?? (own && (marker === '' || marker.startsWith('keys: ')) ? own : '');
    if (!step) continue;
    const expected = m[2]!.replace(/\n$/, '').split('\n');
    const keys = [...(/keys: (.*)/.exec(marker)?.[1] ?? '').matchAll(/"([^"]*)"|(\S+)/g)].map((k) => k[0]);
    found.push({ page, before, step, commands: expected.filter((line) => line.startsWith('$ ')).map((l) => l.slice(2)), keys, expected });
  }
  return found;
}

const lessons = readdirSync(join(root, 'steps')).filter((f) => f.endsWith('.md')).map((f) => `steps/${f}`);
const all = ['README.md', ...lessons].flatMap(transcripts);

/** Polls `check` every 100 ms until it returns true; false after `ms`. */
async function until(check: () => boolean, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100)); // the interval of the poll, under its deadline
  }
  return check();
}

/** Plays a transcript: returns the screen at its end, less the shell's last empty prompt. */
async function play(t: Transcript): Promise<string[]> {
  // The reader's side: a home of its own in the Debian testing root (OpenSSH 10.6), a work folder with a keys/
  // folder of its own (step 09 copies a key into it), and `$ ` as the prompt. Its ssh (a script) and shell
  // functions take the reader's `-p 2022` but connect to the step's port, and skip known_hosts (its warning is left
  // off the screen).
  const home = debianTestingHome();
  const inside = home.slice(debianTesting().length);
  const authorizedKeys = join(home, 'work', 'keys', 'authorized_keys');
  mkdirSync(authorizedKeys, { recursive: true });
  mkdirSync(join(home, '.ssh'), { mode: 0o700 });
  const file = readdirSync(join(root, 'steps')).find((f) => f.startsWith(`${t.step}-`) && f.endsWith('.ts'))!;
  // What is started is stopped, last first, even when what comes after it fails to start.
  const stops: (() => unknown)[] = [];
  try {
    return await playWith(t, home, inside, authorizedKeys, file, stops);
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

async function playWith(t: Transcript, home: string, inside: string, authorizedKeys: string, file: string,
  stops: (() => unknown)[]): Promise<string[]> {
  // Step 20's inner server, which its lesson starts on port 2023: step 14, with the reader's keys.
  const inner = t.step === '20'
    ? await startStep('14-real-shell.ts', { env: { SSH_AUTHORIZED_KEYS_DIR: authorizedKeys, SHELL: '/bin/sh' } }) : undefined;
  if (inner) stops.push(() => inner.stop());
  // Step 21's store, which its lesson has on this machine: Debian 12's redis-server, on a free port.
  const storePort = t.step === '21' ? await freePort() : 0;
  const store = t.step === '21'
    ? spawn('redis-server', ['--port', String(storePort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    : undefined;
  if (store) stops.push(() => store.kill('SIGKILL'));
  const step = await startStep(file, { env: { SSH_AUTHORIZED_KEYS_DIR: authorizedKeys, SFTP_HOME: join(home, 'sftp'),
    TRUSTED_USER_CA_KEYS: join(home, 'work', 'keys', 'trusted_user_ca_keys'),
    REVOKED_CERTIFICATES: join(home, 'work', 'keys', 'revoked_certificates'), GIT_REPOS_DIR: join(home, 'repos'),
    KNOWN_HOSTS: join(home, 'work', 'keys', 'known_hosts'), RECORDINGS_DIR: join(home, 'recordings'),
    ...(inner ? { TARGET: `localhost:${inner.port}` } : {}),
    ...(store ? { STORE_URL: `redis://127.0.0.1:${storePort}`, MACHINE: 'a' } : {}) } });
  stops.push(() => step.stop());
  if (store) await waitFor('the store', () => /^store \S+: connected$/m.test(step.output()) || undefined);
  // The reader's web server for step 11 (`python3 -m http.server 8000` in the work folder) is played by this one.
  const web = createServer((request, response) => {
    const name = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    try {
      response.end(readFileSync(join(home, 'work', name.replaceAll('/', ''))));
    } catch {
      response.writeHead(404).end();
    }
  });
  stops.push(() => web.close());
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  for (const line of t.before) execFileSync('bash', ['-c', line], { cwd: join(home, 'work') });
  // The ports a lesson names, each played by a free port: 2022 is the step's, 8000 the web server's.
  const ports: Record<string, number> = { 2022: step.port, 8000: (web.address() as AddressInfo).port };
  for (const named of [8080, 8081, 8082, 1080]) ports[named] = await freePort();
  if (inner) ports[2023] = inner.port;
  // In two passes, through a token each: a free port may hold another named port (38081 holds 8081), and one
  // pass would then rewrite it again.
  const rewrite = [
    ...Object.keys(ports).map((named) => `set -- "\${@//${named}/@${named}@}"`),
    ...Object.entries(ports).map(([named, real]) => `set -- "\${@//@${named}@/${real}}"`),
  ].join('; ');
  // ssh is a script first in PATH, not a shell function, so that git, which runs ssh itself, runs it too. The
  // reader has a git identity.
  mkdirSync(join(home, 'bin'));
  writeFileSync(join(home, 'bin', 'ssh'), `#!/bin/bash\n${rewrite}\n`
    + 'exec /usr/bin/ssh -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "$@"\n', { mode: 0o755 });
  writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = Alice\n\temail = alice@example.com\n');
  writeFileSync(join(home, 'rc'), [
    `PS1='$ '`,
    `PROMPT_COMMAND='echo >> ${inside}/prompts'`,
    `cd ${inside}/work`,
    `PATH=${inside}/bin:$PATH`,
    `sftp() { ${rewrite}; command sftp -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "$@"; }`,
    `scp() { ${rewrite}; command scp -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "$@"; }`,
    `curl() { ${rewrite}; command curl -sS "$@"; }`,
    `ssh-keyscan() { ${rewrite}; command ssh-keyscan "$@"; }`,
    // ssh-add -h names hosts as known_hosts does, ports and all, and reads the known_hosts of the home that
    // /etc/passwd gives (not $HOME, this reader's).
    `ssh-add() { ${rewrite}; command ssh-add -H ~/.ssh/known_hosts "$@"; }`,
    // An agent the reader starts (step 20) ends with the shell.
    `trap '[ -z "$SSH_AGENT_PID" ] || kill $SSH_AGENT_PID' EXIT`,
    '',
  ].join('\n'));
  // Most readers' terminals call themselves xterm-256color; the transcripts show that name.
  // No SSH_ASKPASS: the password is typed at the prompt.
  const [command] = debianTestingCommand(['TERM=xterm-256color', 'bash', '--rcfile', `${inside}/rc`, '-i'], '', home);
  const terminal = new Terminal(command, {});
  stops.push(() => terminal.close());
  const prompts = () => readFileSync(join(home, 'prompts'), 'utf8').length;
  assert.ok(await until(() => { try { return prompts() === 1; } catch { return false; } }, 10_000), 'no shell prompt');
  // Password prompts answered so far, counted over the whole session: a prompt stays on the screen after its answer,
  // and one a command before this one answered is not asking again.
  let answered = 0;
  for (const [i, line] of t.commands.entries()) {
    // The prompt is on the screen before anything is typed: typed earlier, the terminal echoes it once itself and
    // bash's readline draws it again after the prompt.
    assert.ok(await until(() => terminal.screen().at(-1) === '$', 10_000), `no prompt before \`${line}\``);
    const before = prompts();
    terminal.sendKeys('-l', line);
    terminal.sendKeys('Enter');
    let last = '';
    let since = Date.now();
    for (const deadline = Date.now() + 30_000; prompts() === before;) {
      assert.ok(Date.now() < deadline, `\`${line}\` did not finish:\n${terminal.screen().join('\n')}`);
      const seen = terminal.history(); // one capture: its last row is the screen's last row
      const asked = seen.filter((row) => row.endsWith('password:')).length;
      if (asked > answered && seen.at(-1)!.endsWith('password:')) {
        terminal.sendKeys('-l', 'wonderland');
        terminal.sendKeys('Enter');
        answered += 1;
      }
      // The last command may keep a session open: it has done what it shows once the screen shows what the lesson
      // does, or (when keys are still to come) once the screen has stayed still for a while, however busy the machine.
      const now = terminal.screen().join('\n');
      if (now !== last) [last, since] = [now, Date.now()];
      if (i === t.commands.length - 1) {
        if (t.keys.length === 0 && now === t.expected.join('\n')) break;
        if (Date.now() - since > (t.keys.length ? 3000 : 6000)) break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100)); // the interval of the poll, under its deadline
    }
  }
  for (const key of t.keys) {
    const before = terminal.screen().join('\n');
    terminal.sendKeys(...(key.startsWith('"') ? ['-l', key.slice(1, -1)] : [key]));
    await until(() => terminal.screen().join('\n') !== before, 5_000);
    let last = '';
    await until(() => last === (last = terminal.screen().join('\n')), 5_000);
  }
  // Not a wait for anything: what must not come (more than the lesson shows) has half a second to come, and is compared.
  await new Promise((resolve) => setTimeout(resolve, 500));
  // The inner server's port, where the bastion names it, as the lesson names it.
  const screen = terminal.screen().map((row) => (inner ? row.replaceAll(`localhost:${inner.port}`, 'localhost:2023') : row));
  if (screen.at(-1) === '$') screen.pop();
  return screen;
}

// Four at a time: mostly they wait for a terminal, but all at once they start some 25 steps together, and on a
// machine of two busy cores the last would not be listening within startStep's 30 seconds.
describe('the transcripts of the lessons, typed into a real terminal', { concurrency: 4, timeout: 180_000 }, () => {
  test('every console block of a lesson is played here, or by the test its marker names', () => {
    // test/beyond.test.ts reads the first two itself, test/two-factors.test.ts the others (a code must be typed).
    const elsewhere = /^(key login|screen: \d+x\d+|npm run totp|two factors)$/;
    const blocks = lessons.flatMap((page) => [...readFileSync(join(root, page), 'utf8')
      .matchAll(/^(?:<!-- (.*?) -->\n)?```console\n/gm)].map((m) => ({ page, marker: m[1] ?? '' })));
    const played = blocks.filter((b) => !elsewhere.test(b.marker));
    assert.deepEqual(played.map((b) => b.page), all.filter((t) => t.page !== 'README.md').map((t) => t.page));
    assert.ok(all.some((t) => t.page === 'README.md' && t.step === '03'));
  });

  for (const t of all) {
    test(`${t.page}: ${t.commands.join('; ')}${t.keys.length ? `, then ${t.keys.join(' ')}` : ''}`, async () => {
      assert.deepEqual(await play(t), t.expected);
    });
  }
});
