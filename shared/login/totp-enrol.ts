// `npm run totp -- USERNAME`: makes a user's TOTP secret (step 16) and shows it to an authenticator app: an
// `otpauth://` URI, and the same as a QR code in the terminal.
//
// The secret (20 random bytes, in base32) goes to TOTP_DIR/USERNAME (default keys/totp/USERNAME), readable by you
// alone. An existing secret is never replaced: the phone that has it would stop working without a word.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderUnicodeCompact } from 'uqr';
import { authorizedKeys, authorizedKeysFile } from './authorized-keys.ts';
import { explain, fail, shown } from '../core/errors.ts';
import { PERIOD, toBase32, totpDir } from './totp.ts';

const username = process.argv[2] ?? '';
if (process.argv.length !== 3 || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(username)) {
  fail('usage: npm run totp -- USERNAME (letters, digits, "_", "." and "-")');
}

const dir = totpDir();
const path = join(dir, username);
const secret = toBase32(randomBytes(20));
try {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: 'wx' }); // wx: never over an existing secret
} catch (err) {
  if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
    fail(`${shown(path)} exists: ${username} has a secret already (delete the file to make a new one)`);
  }
  fail(`cannot write ${shown(path)}: ${explain(err)}`);
}

const label = encodeURIComponent(`conch-steps:${username}`);
const uri = `otpauth://totp/${label}?secret=${secret}&issuer=conch-steps&algorithm=SHA1&digits=6&period=${PERIOD}`;
console.log(`made the secret of ${username} in ${shown(path)}; scan this with an authenticator app:\n`);
// Light modules are drawn as blocks: on a terminal, white on black whatever its colours, as a scanner expects.
const paint = (line: string) => (process.stdout.isTTY ? `\x1b[97;40m${line}\x1b[0m` : line);
console.log(renderUnicodeCompact(uri).split('\n').map(paint).join('\n'));
console.log(`\n${uri}\n\nor type the secret in by hand: ${secret}`);
// The code is the second factor: step 16 asks for a listed key first, and a user with none never gets that far.
if (authorizedKeys(username).length === 0) {
  console.log(`\nnote: ${username} has no key in ${shown(authorizedKeysFile(username))} yet, and step 16 asks\n`
    + 'for one before the code: list a key there, as step 09 does, or the code lets no one in');
}
