// The bench's measure of what `npx tsx FILE` costs before a step runs a line of its own: a file that imports
// nothing, prints what a step prints once it listens, and waits to be stopped. Its start-up, beside step 03's,
// splits step 03's start-up into the tools' part (npx, tsx and Node) and the step's (ssh2, shared/, its keys).
console.log('listening on 127.0.0.1:0');
setInterval(() => {}, 60_000);
