// `npm run host-cert -- CA_KEY [--valid PERIOD] [NAME ...]`: signs this machine's host keys (HOST_KEYS_DIR, default
// keys/) with a host CA's private key, as `ssh-keygen -s CA_KEY -h` does (it is what runs), for the names clients
// connect to (default: localhost), valid for PERIOD from now (ssh-keygen's -V: default +52w, a year; sign again
// before it ends). Each step then serves the certificates beside its keys, and a client whose known_hosts has one
// `@cert-authority` line for the CA trusts every machine so signed, with no copy of any machine's key.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fail, shown } from '../core/errors.ts';
import { certificateTerms, certificateTime, hostKeyFiles } from './host-keys.ts';

const [ca, ...rest] = process.argv.slice(2);
const at = rest.indexOf('--valid');
const period = at === -1 ? '+52w' : rest[at + 1] ?? '';
const names = at === -1 ? rest : rest.filter((unused, i) => i !== at && i !== at + 1);
if (!ca || ca.startsWith('-') || !/^\+\d+[smhdw]?$/.test(period) || names.some((name) => !/^[A-Za-z0-9_.:*?][A-Za-z0-9_.:*?-]*$/.test(name))) {
  fail('usage: npm run host-cert -- CA_KEY [--valid PERIOD] [NAME ...] (the CA\'s private key file; how long the '
    + 'certificates are valid, such as +52w, the default, or +30d; the names clients connect to, default localhost)');
}
if (!existsSync(`${ca}.pub`)) fail(`no ${shown(`${ca}.pub`)} beside the CA key: make the CA with ssh-keygen -f ${ca}`);
const principals = names.length ? names : ['localhost'];

for (const key of Object.values(hostKeyFiles())) {
  if (!existsSync(`${key}.pub`)) fail(`no host key ${shown(`${key}.pub`)} yet: start any step once, and it is made`);
  const signed = spawnSync('ssh-keygen', ['-q', '-s', ca, '-h', '-I', `${hostname()} host key`, '-n', principals.join(','),
    '-V', period, `${key}.pub`], { encoding: 'utf8', stdio: ['inherit', 'pipe', 'pipe'] });
  if (signed.error) fail(`cannot run ssh-keygen: ${signed.error.message} (it comes with OpenSSH's client)`);
  if (signed.status !== 0) fail(`ssh-keygen could not sign ${shown(`${key}.pub`)}: ${signed.stderr.trim()}`);
  const { validBefore } = certificateTerms(readFileSync(`${key}-cert.pub`, 'utf8'));
  console.log(`signed ${shown(`${key}.pub`)}: ${shown(`${key}-cert.pub`)} (names: ${principals.join(', ')}; `
    + `valid until ${certificateTime(validBefore)})`);
}
const caLine = readFileSync(`${ca}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
const patterns = principals.flatMap((name) => [name, `[${name}]:*`]).join(',');
console.log(`Clients trust every machine so signed with this line in their known_hosts:\n@cert-authority ${patterns} ${caLine}`);
