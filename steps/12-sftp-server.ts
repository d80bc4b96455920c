// Step 12, built on step 02: an SFTP server. sftp and scp copy files to and from a folder of each user's own.
// Run: npx tsx <this file>         Connect: ssh -p 2022 alice@localhost         Password: wonderland
// What you will see, line by line, and why: the lesson beside this file (the .md of the same name).
import { constants, lstat, mkdir, open, opendir, readlink, rename, rmdir, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { Attributes, ClientInfo, SFTPWrapper } from 'ssh2';
import { algorithms } from '../shared/server/algorithms.ts';
import { readHostKeys } from '../shared/server/host-keys.ts';
import { listen } from '../shared/server/listen.ts';
import { log } from '../shared/core/log.ts';
import { readPasswordFile } from '../shared/login/passwords.ts';
import { Handles } from '../shared/channels/sftp-handles.ts';
import { attrsOf, longname, openFlags, permitted, statusOf } from '../shared/channels/sftp-protocol.ts';
import { canonical, inFolder, reach, Refused, refusedIfLink, userFolder } from '../shared/channels/user-folder.ts';

const { Server } = ssh2;
const { STATUS_CODE } = ssh2.utils.sftp;
const { O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_RDONLY } = constants;

const passwords = readPasswordFile();

/** Serves one SFTP session: each request is one operation in the user's folder `root`, answered once it is done. */
function serveSftp(sftp: SFTPWrapper, root: string, user: string, info: ClientInfo): void {
  const handles = new Handles();
  sftp.once('end', () => sftp.end()); // the client has no more requests: close the channel, as sftp-server exits
  sftp.once('close', () => handles.closeAll());
  sftp.on('error', (err: Error) => log(info, `sftp: ${err.message}`)); // a malformed packet ends this session alone
  // Runs a request's work; an error is answered with its SFTP status, and a refusal is logged.
  const answer = (reqid: number, path: string, work: () => Promise<unknown>) => void work().catch((err) => {
    if (err instanceof Refused) log(info, `sftp: refused "${path}" for ${user}: ${err.message}`);
    sftp.status(reqid, ...statusOf(err));
  });
  const ok = (reqid: number) => () => sftp.status(reqid, STATUS_CODE.OK);
  // Gives `work` a path for the client's `path` that leads to no link and to nothing outside the folder.
  const at = async <T>(path: string, work: (where: string) => Promise<T>): Promise<T> => {
    const reached = await reach(root, path);
    return work(reached.path).finally(reached.done);
  };
  // Opens what `where` names, but not a link (a link planted there could point anywhere).
  const openAt = (where: string, flags: number, mode?: number) =>
    open(where, flags | O_NOFOLLOW, mode).catch(async (err) => { throw await refusedIfLink(where, err); });
  const setAttrs = async (file: FileHandle, attrs: Partial<Attributes>) => {
    if (attrs.uid !== undefined || attrs.gid !== undefined) throw new Refused('changing the owner');
    if (attrs.mode !== undefined) await file.chmod(permitted(attrs.mode, 0));
    if (attrs.size !== undefined) await file.truncate(attrs.size);
    if (attrs.atime !== undefined && attrs.mtime !== undefined) await file.utimes(attrs.atime, attrs.mtime);
  };

  sftp.on('REALPATH', (reqid, path) => answer(reqid, path, async () =>
    sftp.name(reqid, [{ filename: canonical(path), longname: '', attrs: {} as Attributes }])));
  // No link is ever followed, so STAT is LSTAT: a link shows as the link it is.
  const stat = (reqid: number, path: string) => answer(reqid, path, async () =>
    sftp.attrs(reqid, attrsOf(await at(path, (where) => lstat(where)))));
  for (const request of ['STAT', 'LSTAT'] as const) sftp.on(request, stat);
  sftp.on('FSTAT', (reqid, handle) => answer(reqid, '', async () =>
    sftp.attrs(reqid, attrsOf(await handles.file(handle).stat()))));
  sftp.on('OPEN', (reqid, path, flags, attrs) => answer(reqid, path, async () => {
    const file = await at(path, (where) => openAt(where, openFlags(flags), permitted(attrs.mode, 0o644)));
    if (!(await file.stat()).isFile()) await file.close().then(() => { throw new Refused('not a regular file'); });
    sftp.handle(reqid, await handles.add(file));
  }));
  sftp.on('READ', (reqid, handle, offset, length) => answer(reqid, '', async () => {
    const chunk = Buffer.alloc(Math.min(length, 64 * 1024)); // what the client asks, up to 64 KiB
    const read = await handles.file(handle).read(chunk, 0, chunk.length, offset);
    if (read.bytesRead === 0) sftp.status(reqid, STATUS_CODE.EOF);
    else sftp.data(reqid, read.buffer.subarray(0, read.bytesRead));
  }));
  sftp.on('WRITE', (reqid, handle, offset, data) => answer(reqid, '', () =>
    handles.write(handle, data, offset).then(ok(reqid))));
  sftp.on('OPENDIR', (reqid, path) => answer(reqid, path, async () => {
    const folder = await at(path, async (where) => {
      const dir = await openAt(where, O_RDONLY | O_DIRECTORY);
      return { dir, entries: await opendir(inFolder(dir, where, '.')), path: where };
    });
    sftp.handle(reqid, await handles.add(folder));
  }));
  sftp.on('READDIR', (reqid, handle) => answer(reqid, '', async () => {
    const { dir, entries, path } = handles.folder(handle);
    const names = [];
    for (let entry; names.length < 100 && (entry = await entries.read());) {
      const stats = await lstat(inFolder(dir, path, entry.name)).catch(() => undefined);
      if (!stats) continue; // gone since it was listed
      names.push({ filename: entry.name, longname: longname(entry.name, stats, user), attrs: attrsOf(stats) });
    }
    if (names.length === 0) sftp.status(reqid, STATUS_CODE.EOF);
    else sftp.name(reqid, names);
  }));
  sftp.on('CLOSE', (reqid, handle) => answer(reqid, '', () => handles.close(handle).then(ok(reqid))));
  sftp.on('REMOVE', (reqid, path) => answer(reqid, path, () => at(path, unlink).then(ok(reqid))));
  sftp.on('RMDIR', (reqid, path) => answer(reqid, path, () => at(path, rmdir).then(ok(reqid))));
  sftp.on('MKDIR', (reqid, path, attrs) => answer(reqid, path, () =>
    at(path, (where) => mkdir(where, permitted(attrs.mode, 0o755))).then(ok(reqid))));
  // SFTP version 3 renames only to a name that is free.
  sftp.on('RENAME', (reqid, from, to) => answer(reqid, `${from} -> ${to}`, () => at(from, (source) =>
    at(to, async (target) => {
      const taken = await lstat(target).then(() => true, () => false);
      if (taken) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
      await rename(source, target);
    })).then(ok(reqid))));
  sftp.on('READLINK', (reqid, path) => answer(reqid, path, async () => {
    const target = await at(path, (where) => readlink(where));
    sftp.name(reqid, [{ filename: target, longname: target, attrs: {} as Attributes }]);
  }));
  sftp.on('SETSTAT', (reqid, path, attrs) => answer(reqid, path, async () => {
    if (attrs.mode !== undefined && canonical(path) === '/') throw new Refused('the folder stays 0700');
    const file = await at(path, (where) => openAt(where, O_RDONLY | O_NONBLOCK));
    await setAttrs(file, attrs).finally(() => file.close()).then(ok(reqid));
  }));
  sftp.on('FSETSTAT', (reqid, handle, attrs) => answer(reqid, '', () =>
    setAttrs(handles.file(handle), attrs).then(ok(reqid))));
}

const server = new Server({ hostKeys: readHostKeys(), algorithms }, (client, info) => {
  let user = '';
  client.on('authentication', async (ctx) => {
    if (ctx.method === 'password' && await passwords.check(ctx.username, ctx.password, info)) {
      user = ctx.username;
      ctx.accept();
    } else {
      ctx.reject(['password']); // the ways to log in that are left
    }
  });

  client.on('session', (acceptSession) => {
    const session = acceptSession();
    // sftp and scp ask for the "sftp" subsystem: ssh2 speaks the protocol, and the step does what it asks. Accept
    // at once: the client sends its first request right behind the subsystem request, without waiting for a yes.
    session.on('sftp', (accept, reject) => {
      try {
        serveSftp(accept(), userFolder(user), user, info);
      } catch (err) {
        log(info, `sftp refused: ${(err as Error).message}`);
        reject();
      }
    });
  });
});

listen(server);
