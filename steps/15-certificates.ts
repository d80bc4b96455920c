// Step 15, built on step 09: keys signed by a certificate authority the server trusts, instead of lists of keys.
// Run: npx tsx <this file>         Connect: ssh -p 2022 -i ~/.ssh/conch-steps-demo alice@localhost (the lesson signs it)
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ClientInfo, PublicKeyAuthContext } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { revoked, trustedCAs } from '../shared/login/certificate-authority.ts';
import { runCommand } from '../shared/channels/commands.ts';
import { fingerprint } from '../shared/core/fingerprint.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { caSignatureProblem, parseCertificate, signedByCertifiedKey, type Certificate } from '../shared/login/openssh-certificate.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';

const { Server } = ssh2;

const passwords = readPasswordFile();

/** The echo protocol: greets, sends back every byte it receives, and finishes when the input does. */
function echoProtocol(stream: Duplex): void {
  stream.write('Echo protocol connected\r\n');
  stream.pipe(stream); // reads no faster than the echo is taken, and ends when the input does
}

/** Why a certificate may not log in as `user` from address `ip`, or undefined if it may: what sshd checks. */
function refusal(cert: Certificate, user: string, ip: string): string | undefined {
  const now = BigInt(Math.floor(Date.now() / 1000));
  if (!trustedCAs().some((ca) => ca.equals(cert.caKey))) return `its CA ${fingerprint(cert.caKey)} is not trusted`;
  const unsigned = caSignatureProblem(cert); // also refuses a CA that signed with RSA and SHA-1
  if (unsigned) return unsigned;
  if (cert.type !== 'user') return `it is a ${cert.type} certificate, not a user certificate`;
  if (now < cert.validAfter) return 'it is not valid yet';
  if (now >= cert.validBefore) return 'it has expired';
  if (cert.principals.length === 0) return 'it names no principals';
  if (!cert.principals.includes(user)) return `${user} is not one of its principals`;
  // A critical option the server does not understand must refuse the certificate: it may restrict what it allows.
  // (verify-required, for a security key's certificate, is checked with its signature, in shared/login.)
  const understood = ['force-command', 'source-address', 'verify-required'];
  const unknown = [...cert.criticalOptions.keys()].find((name) => !understood.includes(name));
  if (unknown !== undefined) return `its critical option ${unknown} is not understood here`;
  if (cert.sourceAddress?.has(ip) === false) return `source-address leaves out ${ip}`;
  const revokedAs = revoked(cert);
  return revokedAs ? `it is revoked (${revokedAs})` : undefined;
}

/** The certificate, if it may log in and, once signed, the signature is the certified key's; logs why not. */
function certificateMayLogIn(ctx: PublicKeyAuthContext, info: ClientInfo): Certificate | undefined {
  const cert = parseCertificate(ctx.key.data);
  if (cert instanceof Error) {
    log(info, `key ${fingerprint(ctx.key.data)} refused for ${ctx.username}: ${cert.message}`);
    return undefined;
  }
  let why = refusal(cert, ctx.username, info.ip);
  // The second round: the client has signed the login, and must have signed it with the key the CA certified.
  if (!why && ctx.signature && ctx.blob && !signedByCertifiedKey(cert, ctx.blob, ctx.signature, ctx.hashAlgo)) {
    why = 'the signature is not the certified key\'s (or is RSA with SHA-1)';
  }
  if (!why) return cert;
  log(info, `certificate "${cert.keyId}" refused for ${ctx.username}: ${why}`);
  return undefined;
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  let certificate: Certificate | undefined; // what the certificate allows, once logged in with one
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      certificate = undefined; // a certificate only asked about, before, restricts nothing
      ctx.accept();
    } else if (ctx.method === 'publickey' && (certificate = certificateMayLogIn(ctx, info))) {
      user = ctx.username;
      const { keyId, serial, caKey } = certificate;
      if (ctx.signature) log(info, `certificate "${keyId}" (serial ${serial}) of CA ${fingerprint(caKey)} for ${user}`);
      ctx.accept(); // unsigned, accept() says "this certificate would do"
    } else {
      ctx.reject(['publickey', 'password']); // the ways to log in that are left
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    let terminal = false; // whether the session has a terminal: a command's lines then end with CR LF
    session.on('pty', (accept, reject) => {
      // The certificate's extensions say what its holder may do: here, only whether it may have a terminal.
      if (certificate && !certificate.extensions.has('permit-pty')) return reject?.();
      terminal = true;
      accept?.(); // undefined when the client wants no reply
    });
    // force-command: the certificate's command, and nothing else, whatever the client asked for.
    const forced = () => certificate?.criticalOptions.get('force-command');
    session.on('shell', (acceptShell) => {
      if (forced() !== undefined) return runCommand(acceptShell(), forced()!, user, info, terminal);
      const channel = acceptShell();
      let eofReceived = false;
      session.on('eof', () => {
        eofReceived = true;
      });
      channel.on('close', () => {
        if (!eofReceived) log(info, 'channel closed without EOF');
      });
      echoProtocol(channel); // everything else the session does is the protocol's business
    });
    // Step 08's commands, from shared/channels/commands.ts: they end the channel with their exit status.
    session.on('exec', (acceptExec, reject, { command }) =>
      runCommand(acceptExec(), forced() ?? command, user, info, terminal));
  });
});

listen(server);
