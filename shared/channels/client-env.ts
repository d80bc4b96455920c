// The variables a client may set in a session with `env` requests (ssh's SendEnv and SetEnv), bounded as sshd bounds
// them: steps 14 and 20. ssh2 (shared/patches/, part 023) refuses them itself once the session's program has started.

/** At most this many variables set by a client in one session, */
export const MAX_ENV_VARIABLES = 32;
/** and at most this many bytes of their names and values together: each request may carry some 32 KB. */
export const MAX_ENV_BYTES = 8 * 1024;

/** Whether a client may set the variable `name`: sshd's `AcceptEnv LANG LC_*` (and no NUL, which ends a C string). */
export function acceptEnv(name: string): boolean {
  return (name === 'LANG' || name.startsWith('LC_')) && !name.includes('\0');
}

/**
 * Sets `name` to `value` in `env` if a client may: a name acceptEnv takes, with no more than MAX_ENV_VARIABLES such
 * names in `env` and MAX_ENV_BYTES of them and their values, this one included, and a value without NUL. Returns whether it did (a
 * variable set again replaces its value).
 */
export function setClientEnv(env: Record<string, string>, name: string, value: string): boolean {
  if (!acceptEnv(name) || value.includes('\0')) return false; // a program's environment cannot hold a NUL
  const after = { ...env, [name]: value };
  const set = Object.entries(after).filter(([key]) => acceptEnv(key));
  const bytes = set.reduce((sum, [key, val]) => sum + Buffer.byteLength(key) + Buffer.byteLength(val), 0);
  if (set.length > MAX_ENV_VARIABLES || bytes > MAX_ENV_BYTES) return false;
  env[name] = value;
  return true;
}
