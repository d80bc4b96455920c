// @lydell/node-pty 1.1.0 has methods and a field its typings leave out (unixTerminal.js, terminal.js): destroy()
// closes the terminal's master side, then sends SIGHUP to the program (closing it hangs the terminal up, as sshd
// does when a session ends); fd is that master side's file descriptor (shared/channels/pty-input.ts writes to it),
// and on('close') tells when it has closed (after destroy(), or when the program's end made its reads fail).
import '@lydell/node-pty';

declare module '@lydell/node-pty' {
  interface IPty {
    destroy(): void;
    readonly fd: number;
    on(event: 'close', listener: () => void): void;
  }
}
