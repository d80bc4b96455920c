// Loaded before a step with `--import` (see ink.ts, step 18): at SIGUSR2, a full garbage collection, then one
// line with the heap still in use, so that what sessions leave behind is told apart from garbage not yet collected.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
process.on('SIGUSR2', () => {
  collectGarbage();
  console.log(`heap in use after a full collection: ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(2)} MiB`);
});
