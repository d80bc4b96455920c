// Loaded before a step with `--import` (see attacks.test.ts): prints `scrypt called` at every scrypt, so that a
// test can count the work each login attempt costs without timing it.
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

const scrypt = crypto.scrypt;
crypto.scrypt = ((...args: Parameters<typeof scrypt>) => {
  console.log('scrypt called');
  return (scrypt as (...a: unknown[]) => void)(...args);
}) as typeof scrypt;
// `import { scrypt } from 'node:crypto'` in shared/login/passwords.ts, loaded after this, then finds the counting one.
syncBuiltinESMExports();
