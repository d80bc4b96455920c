// Loaded before a step with `--import` by `npm run bench`: makes setNoDelay() do nothing, so that the step runs with
// Nagle's algorithm on, as it would without its setNoDelay(true) call. For measuring what that call is worth.
import { Socket } from 'node:net';

Socket.prototype.setNoDelay = function (this: Socket) {
  return this;
};
