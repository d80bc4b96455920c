// The files and folders an SFTP session has open (step 12): the handles the client names them by, at most
// `SFTP_MAX_HANDLES` of them, and all closed when the session ends.
import type { Dir } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { limits } from '../core/options.ts';

/** An open folder: the folder itself (to look names up in) and the reading of its entries. */
export interface OpenFolder {
  dir: FileHandle;
  entries: Dir;
  /** Its path, where names cannot be looked up in an open folder (see shared/channels/user-folder.ts). */
  path: string;
}

const closeOne = (open: FileHandle | OpenFolder) =>
  ('entries' in open ? open.entries.close().then(() => open.dir.close()) : open.close()).catch(() => {});

/** A handle the client never had, or has closed: a bad request, answered as one. */
function noSuchHandle(): never {
  throw Object.assign(new Error('no such handle'), { code: 'EINVAL' });
}

export class Handles {
  private readonly open = new Map<number, FileHandle | OpenFolder>();
  private readonly writing = new WeakMap<FileHandle, Promise<unknown>>();
  private next = 0;
  private ended = false;

  /** A handle for an open file or folder; closes it and throws when there are too many or the session has ended. */
  async add(open: FileHandle | OpenFolder): Promise<Buffer> {
    if (this.ended || this.open.size >= limits.sftpMaxHandles) {
      await closeOne(open);
      throw new Error(`at most ${limits.sftpMaxHandles} files open at once (SFTP_MAX_HANDLES)`);
    }
    this.open.set(this.next, open);
    return Buffer.from(new Uint32Array([this.next++]).buffer);
  }

  /** The open file a handle names; a folder's handle, or an unknown one, is an error. */
  file(handle: Buffer): FileHandle {
    const open = this.find(handle);
    return 'entries' in open ? noSuchHandle() : open;
  }

  /**
   * Writes to the file a handle names, each write after the ones the client sent before it: requests are answered
   * as they finish, and in a file opened to append (`reput`), two writes that overtook each other would swap.
   */
  write(handle: Buffer, data: Buffer, offset: number): Promise<unknown> {
    const file = this.file(handle);
    const before = this.writing.get(file) ?? Promise.resolve();
    const done = before.catch(() => {}).then(() => file.write(data, 0, data.length, offset));
    this.writing.set(file, done);
    return done;
  }

  /** The open folder a handle names. */
  folder(handle: Buffer): OpenFolder {
    const open = this.find(handle);
    return 'entries' in open ? open : noSuchHandle();
  }

  /** Closes what a handle names, and forgets the handle. */
  async close(handle: Buffer): Promise<void> {
    const open = this.find(handle);
    this.open.delete(handle.readUInt32LE());
    await closeOne(open);
  }

  /** Closes everything, for good: the session has ended. */
  closeAll(): void {
    this.ended = true;
    for (const open of this.open.values()) void closeOne(open);
    this.open.clear();
  }

  private find(handle: Buffer): FileHandle | OpenFolder {
    return this.open.get(handle.length === 4 ? handle.readUInt32LE() : -1) ?? noSuchHandle();
  }
}
