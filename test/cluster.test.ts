// Step 17 on every core, and steps behind a real HAProxy (Debian's) that sends PROXY v2 headers: the client's
// real address in the logs and the penalties, a backend killed under load, a rolling restart under load.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { count, ssh, sshEnv, sshOptions, startHaproxy, startStep, temporaryDir, Terminal, useStep, waitFor, type Step } from './helpers.ts';

/** One session through ssh2's client: logs in from `localAddress`, opens a shell, reads step 07's greeting, ends. */
function session(port: number, localAddress = '127.0.0.1', password = 'wonderland'): Promise<'ok' | string> {
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    const done = (outcome: string) => {
      client.end();
      resolve(outcome);
    };
    client.on('error', (err) => done(err.message));
    client.on('close', () => done('closed'));
    client.on('ready', () => client.shell((err, channel) => {
      if (err) return done(err.message);
      let seen = '';
      channel.on('data', (chunk: Buffer) => {
        seen += chunk;
        if (seen.includes('Echo protocol connected') || seen.includes('Goodbye')) done('ok');
      });
      channel.on('close', () => done(seen ? 'ok' : 'closed before a word'));
    }));
    client.connect({ host: '127.0.0.1', port, localAddress, username: 'alice', password, readyTimeout: 10_000 });
  });
}

/** Runs `session` `concurrency` at a time until `stop()` says so; resolves with each outcome. */
function load(port: number, concurrency: number): { stop: () => Promise<string[]> } {
  const outcomes: string[] = [];
  let running = true;
  const lanes = Array.from({ length: concurrency }, async () => {
    while (running) outcomes.push(await session(port));
  });
  return { stop: async () => ((running = false), await Promise.all(lanes), outcomes) };
}

/** The step's worker processes (children of the primary that run node). */
function workersOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
    readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number))
    .filter((child) => readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('17-every-core'));
}

describe('step 17: every core', { timeout: 180_000 }, () => {
  const step = useStep('17-every-core.ts', { env: { WORKERS: '2', DRAIN_TIMEOUT: '20' } });

  test('two workers share the port; one that dies is replaced', async () => {
    assert.match(step().output(), new RegExp(`^primary ${step().pid}: 2 worker\\(s\\); kill -HUP ${step().pid} replaces them one at a time$`, 'm'));
    // The first worker listens alone, then the second starts: a port that is taken is then said once.
    const listening = () => count(step(), /^listening on /gm);
    await waitFor('two workers listening', () => (workersOf(step().pid).length === 2 && listening() === 2) || undefined);
    assert.deepEqual(await Promise.all([1, 2, 3, 4].map(() => session(step().port))), ['ok', 'ok', 'ok', 'ok']);
    const [victim] = workersOf(step().pid);
    process.kill(victim!, 'SIGKILL');
    await waitFor('a new worker', () => count(step(), new RegExp(`^worker ${victim} ended \\(SIGKILL\\): starting another$`, 'gm')) || undefined);
    await waitFor('two workers again', () => (workersOf(step().pid).length === 2 && !workersOf(step().pid).includes(victim!)) || undefined);
    await waitFor('the new one listening', () => listening() === 3 || undefined);
    assert.equal(await session(step().port), 'ok');
  });

  test('a rolling restart under load: no session fails, and a shell opened before it goes on echoing', async () => {
    // A shell of step 07's, open across the restart: its worker drains, and waits for it.
    const client = new ssh2.Client();
    client.connect({ host: '127.0.0.1', port: step().port, username: 'alice', password: 'wonderland' });
    await once(client, 'ready');
    const shell = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell((err, c) => (err ? reject(err) : resolve(c))));
    let echoed = '';
    shell.on('data', (chunk: Buffer) => (echoed += chunk));
    const before = workersOf(step().pid);
    const running = load(step().port, 4);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    process.kill(step().pid, 'SIGHUP');
    await waitFor('new workers', () => (workersOf(step().pid).filter((pid) => !before.includes(pid)).length === 2) || undefined);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const outcomes = await running.stop();
    assert.ok(outcomes.length > 20, `only ${outcomes.length} sessions`);
    assert.deepEqual(outcomes.filter((outcome) => outcome !== 'ok'), []);
    shell.write('still here\r');
    await waitFor('the echo', () => echoed.includes('still here') || undefined);
    // The old worker that holds the shell is still there, draining, and goes once the shell ends.
    assert.ok(workersOf(step().pid).some((pid) => before.includes(pid)));
    shell.end();
    client.end();
    await waitFor('the old workers gone', () => !workersOf(step().pid).some((pid) => before.includes(pid)) || undefined);
  });

  test('SIGTERM: the primary stops the workers, each after its logged-in connections, and exits 0', async () => {
    const client = new ssh2.Client();
    client.connect({ host: '127.0.0.1', port: step().port, username: 'alice', password: 'wonderland' });
    await once(client, 'ready');
    const idleStops = () => count(step(), /^SIGTERM: closing the listener and 0 connection\(s\)$/gm);
    const idleBefore = idleStops(); // the rolling restart's, if any
    const exited = step().stop();
    await waitFor('draining', () => count(step(), /^SIGTERM: closing the listener; 1 connection\(s\) get up to 20 s to finish \(DRAIN_TIMEOUT\)$/gm) || undefined);
    // Not accepted any more, once both workers have had the signal (the other one has nothing to wait for); the
    // logged-in connection still works.
    await waitFor('the other worker', () => (idleStops() > idleBefore) || undefined);
    let refused = false;
    for (const deadline = Date.now() + 5000; !refused && Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
      refused = await session(step().port) !== 'ok';
    }
    assert.ok(refused, 'new sessions still accepted');
    const shell = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.shell((err, c) => (err ? reject(err) : resolve(c))));
    await once(shell, 'data');
    client.end();
    assert.equal(await exited, 0);
  });
});

describe('step 17: a rolling restart keeps the sessions it promises to keep', { timeout: 120_000 }, () => {
  const step = useStep('17-every-core.ts', { env: { WORKERS: '1', DRAIN_TIMEOUT: '2', RETIRE_TIMEOUT: '8' } });

  test('an echo session in a terminal goes on past DRAIN_TIMEOUT, and is closed at RETIRE_TIMEOUT', async () => {
    const terminal = new Terminal(['ssh', ...sshOptions, '-o', 'LogLevel=ERROR', '-p', String(step().port), 'alice@localhost'],
      sshEnv('wonderland'));
    try {
      await waitFor('the greeting', () => terminal.screen().includes('Echo protocol connected') || undefined);
      process.kill(step().pid, 'SIGHUP');
      await waitFor('the new worker', () => count(step(), /^listening on /gm) === 2 || undefined);
      await waitFor('the old one retired', () =>
        /^retired: closing the listener; 1 connection\(s\) get up to 8 s to finish \(RETIRE_TIMEOUT\)$/m.test(step().output()) || undefined);
      // Past the drain time of a SIGTERM (2 s here): until this change, the session was closed then.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      terminal.sendKeys('still here', 'Enter');
      await waitFor('the echo', () => terminal.screen().includes('still here') || undefined);
      // At RETIRE_TIMEOUT the old worker closes what it has left, and the client says so.
      await waitFor('the bound', () => terminal.exitStatus() !== undefined || undefined, 10_000);
      assert.equal(terminal.exitStatus(), 255);
      assert.equal(terminal.screen().at(-1), 'Connection to localhost closed by remote host.');
      assert.match(step().output(), /^RETIRE_TIMEOUT: closing the listener and 1 connection\(s\)$/m);
    } finally {
      terminal.close();
    }
  });
});

describe('steps behind HAProxy (PROXY protocol v2)', { timeout: 180_000 }, () => {
  const dir = temporaryDir();
  const steps: Step[] = [];
  let haproxy: ChildProcess | undefined;
  let front = 0;
  after(async () => {
    haproxy?.kill('SIGKILL');
    for (const step of steps) await step.stop('SIGKILL');
  });

  /** Two step 07 processes (the same host keys, from the test's folder), and HAProxy in front of them. */
  async function start(env: Record<string, string> = {}): Promise<void> {
    for (let i = 0; i < 2; i++) {
      steps.push(await startStep('07-protocols.ts', { env: { PROXY_PROTOCOL_FROM: '127.0.0.1', ...env } }));
    }
    ({ port: front, process: haproxy } = await startHaproxy(dir, steps.map((step) => `127.0.0.1:${step.port}`)));
    for (const deadline = Date.now() + 10_000; await session(front, '127.0.0.4') !== 'ok';) {
      assert.ok(Date.now() < deadline, 'HAProxy did not start');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  test('logins through HAProxy: each step logs the client\'s own address (127.0.0.2, 127.0.0.3)', async () => {
    await start({ AUTH_PENALTY_MAX: '2' });
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.3', '127.0.0.2']) assert.equal(await session(front, from), 'ok');
    const logins = (from: string) => steps.map((step) => count(step, new RegExp(`^${from.replaceAll('.', '\\.')}:\\d+ authenticated as alice$`, 'gm')));
    assert.deepEqual([logins('127.0.0.2'), logins('127.0.0.3')].map((each) => each[0]! + each[1]!), [2, 2]);
    assert.ok(steps.every((step, i) => logins('127.0.0.2')[i]! + logins('127.0.0.3')[i]! > 0), 'both steps served');
    // HAProxy's own address (127.0.0.1) is never taken for a client's.
    assert.equal(steps.reduce((sum, step) => sum + count(step, /^127\.0\.0\.1:\d+ /gm), 0), 0);
    const viaOpenSsh = await ssh(front, 'alice', 'wonderland', ['-b', '127.0.0.3', '-T']);
    assert.equal(viaOpenSsh.stdout, 'Echo protocol connected\r\n');
  });

  test('HAProxy\'s health checks (every 300 ms here) are logged nowhere', async () => {
    // Each step had two checks at least before HAProxy sent it a client (rise 2); then, once the sessions before
    // have closed, two idle seconds.
    const open = (step: Step) => count(step, / connection opened$/gm) - count(step, / connection closed$/gm);
    await waitFor('the sessions before closed', () => steps.every((step) => open(step) === 0) || undefined);
    const before = steps.map((step) => step.output().length);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.deepEqual(steps.map((step, i) => step.output().slice(before[i])), ['', '']);
    // Unpatched, `unknown:? connection opened` and `closed` for every check: it resets before the step sees it.
    assert.equal(steps.reduce((sum, step) => sum + count(step, /^unknown:/gm), 0), 0);
  });

  test('the penalties slow the failing address alone', async () => {
    // Eleven failed connections from 127.0.0.2 to each step: then its answers wait; 127.0.0.3's do not.
    for (let i = 0; i < 24; i++) assert.notEqual(await session(front, '127.0.0.2', 'wrong'), 'ok');
    for (const step of steps) {
      await waitFor('the penalty', () => count(step, /^127\.0\.0\.2:\d+ this address keeps failing to log in/gm) || undefined);
    }
    const started = Date.now();
    assert.notEqual(await session(front, '127.0.0.2', 'wrong'), 'ok');
    const failingWaited = Date.now() - started;
    const quick = Date.now();
    assert.equal(await session(front, '127.0.0.3'), 'ok');
    assert.ok(failingWaited >= 1000, `the failing address waited ${failingWaited} ms`);
    assert.equal(steps.reduce((sum, step) => sum + count(step, /^127\.0\.0\.3:\d+ this address keeps failing/gm), 0), 0);
    console.log(`failing address: ${failingWaited} ms; the other: ${Date.now() - quick} ms`);
  });

  test('a backend killed under load: new sessions go to the other; at most those in flight fail', async () => {
    const running = load(front, 4);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    process.kill(steps[0]!.pid, 'SIGKILL');
    const killedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const outcomes = await running.stop();
    const failed = outcomes.filter((outcome) => outcome !== 'ok');
    assert.ok(failed.length <= 4, `${failed.length} failed: ${failed.join('; ')}`);
    // After the kill, the other step served on.
    assert.ok(outcomes.length > 10);
    assert.equal(await session(front), 'ok');
    console.log(`${outcomes.length} sessions, ${failed.length} failed when a backend was killed ${Date.now() - killedAt} ms ago`);
  });
});
