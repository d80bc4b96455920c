// `npm run passwd -- USERNAME`: sets a user's password in the password file, stored as a scrypt hash.
//
// The password is read without echo on a terminal (asked twice), or as the first line of standard input when
// that is a pipe. The user's line is replaced where it stands, or added at the end; every other line stays
// byte for byte as it was. The new file is written beside the old one and renamed over it, so a crash halfway
// leaves the old file whole.
import { closeSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, statSync, writeSync } from 'node:fs';
import { explain, fail, shown } from '../core/errors.ts';
import { hashPassword, passwordFilePath } from './passwords.ts';

const username = process.argv[2] ?? '';
if (process.argv.length !== 3 || !/^[^\s:#][^\s:]*$/.test(username)) {
  fail('usage: npm run passwd -- USERNAME (a user name has no spaces and no ":", and does not start with "#")');
}

const password = process.stdin.isTTY ? await askTwice() : firstLine(await readAll());
if (password === '') fail('the password is empty');

const path = passwordFilePath();
let text = '';
try {
  text = readFileSync(path, 'utf8');
} catch (err) {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fail(`cannot read ${shown(path)}: ${explain(err)}`);
}
const entry = `${username}:${await hashPassword(password)}`;

// Each line keeps its own ending ('\n', '\r\n' or none); only the user's line changes.
const lines: string[] = [...(text.match(/[^\n]*\n|[^\n]+$/g) ?? [])];
const index = lines.findIndex((line) => line.startsWith(`${username}:`));
if (index === -1) {
  if (text !== '' && !text.endsWith('\n')) lines.push('\n');
  lines.push(`${entry}\n`);
} else {
  lines[index] = entry + (lines[index]!.match(/\r?\n$/)?.[0] ?? '');
}
writeAtomically(path, lines.join(''));
console.log(`${index === -1 ? 'added' : 'changed'} the password of ${username} in ${shown(path)} (scrypt)`);

/**
 * Writes `content` to a new file beside `path`, flushes it to disk, then renames it over `path`. When `path` is a
 * symbolic link, the file it points to is the one replaced, and the link stays. The file keeps its mode, less
 * anything beyond 0600: other users have no business reading password hashes.
 */
function writeAtomically(link: string, content: string): void {
  let path = link;
  try {
    path = realpathSync(link);
  } catch {
    // a new file
  }
  const temporary = `${path}.${process.pid}.new`;
  let mode = 0o600;
  try {
    mode = statSync(path).mode & 0o600;
  } catch {
    // a new file: readable by its owner only
  }
  try {
    const fd = openSync(temporary, 'wx', mode);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (err) {
    fail(`cannot write ${shown(path)}: ${explain(err)}`);
  }
}

async function askTwice(): Promise<string> {
  const first = await askHidden(`New password for ${username}: `);
  const second = await askHidden('Retype the password: ');
  if (first !== second) fail('the two passwords differ; nothing was changed');
  return first;
}

/** Asks on the terminal with echo off: the terminal shows nothing of what is typed. */
function askHidden(prompt: string): Promise<string> {
  process.stdout.write(prompt);
  process.stdin.setRawMode(true);
  process.stdin.resume();
  let typed = '';
  return new Promise((resolve) => {
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') {
          process.stdin.off('data', onData);
          process.stdin.setRawMode(false);
          process.stdin.pause();
          process.stdout.write('\n');
          return resolve(typed);
        }
        if (char === '\u0003') {
          process.stdin.setRawMode(false);
          process.stdout.write('\n');
          fail('cancelled; nothing was changed');
        }
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else typed += char;
      }
    };
    process.stdin.on('data', onData);
  });
}

async function readAll(): Promise<string> {
  let data = '';
  for await (const chunk of process.stdin) data += chunk;
  return data;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.replace(/\r$/, '');
}
