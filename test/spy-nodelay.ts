// Loaded before a step with `--import` (see startup.test.ts): prints a line whenever a socket turns Nagle's
// algorithm on or off, so a test can see that every connection gets TCP_NODELAY.
import { Socket } from 'node:net';

const setNoDelay = Socket.prototype.setNoDelay;
Socket.prototype.setNoDelay = function (this: Socket, noDelay?: boolean) {
  console.log(`setNoDelay(${noDelay}) for ${this.remoteAddress}:${this.remotePort}`);
  return setNoDelay.call(this, noDelay);
};
