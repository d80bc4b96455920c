// `npm run host-cert -- CA_KEY [NAME ...]`: signs this machine's host keys (HOST_KEYS_DIR, default keys/) with a
// host CA's private key, as `ssh-keygen -s CA_KEY -h` does (it is what runs), for the names clients connect to
// (default: localhost). Each step then serves the certificates beside its keys, and a client whose known_hosts has
// one `@cert-authority` line for the CA trusts every machine so signed, with no copy of any machine's key.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fail, shown } from '../core/errors.ts';
import { hostKeyFiles } from './host-keys.ts';

const [ca, ...names] = process.argv.slice(2);
if (!ca || ca.startsWith('-') || names.some((name) => !/^[A-Za-z0-9_.:*?-]+$/.test(name))) {
  fail('usage: npm run host-cert -- CA_KEY [NAME ...] (the CA\'s private key file, then the names clients connect to, '
    + 'default localhost)');
}
if (!existsSync(`${ca}.pub`)) fail(`no ${shown(`${ca}.pub`)} beside the CA key: make the CA with ssh-keygen -f ${ca}`);
const principals = names.length ? names : ['localhost'];

for (const key of Object.values(hostKeyFiles())) {
  if (!existsSync(`${key}.pub`)) fail(`no host key ${shown(`${key}.pub`)} yet: start any step once, and it is made`);
  const signed = spawnSync('ssh-keygen', ['-q', '-s', ca, '-h', '-I', `${hostname()} host key`, '-n', principals.join(','),
    `${key}.pub`], { encoding: 'utf8', stdio: ['inherit', 'pipe', 'pipe'] });
  if (signed.error) fail(`cannot run ssh-keygen: ${signed.error.message} (it comes with OpenSSH's client)`);
  if (signed.status !== 0) fail(`ssh-keygen could not sign ${shown(`${key}.pub`)}: ${signed.stderr.trim()}`);
  console.log(`signed ${shown(`${key}.pub`)}: ${shown(`${key}-cert.pub`)} (names: ${principals.join(', ')})`);
}
const caLine = readFileSync(`${ca}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
const patterns = principals.flatMap((name) => [name, `[${name}]:*`]).join(',');
console.log(`Clients trust every machine so signed with this line in their known_hosts:\n@cert-authority ${patterns} ${caLine}`);
