// @lydell/node-pty 1.1.0 has a method its typings leave out (unixTerminal.js): destroy() closes the terminal's
// master side, then sends SIGHUP to the program. Closing it hangs the terminal up, as sshd does when a session ends.
import '@lydell/node-pty';

declare module '@lydell/node-pty' {
  interface IPty {
    destroy(): void;
  }
}
