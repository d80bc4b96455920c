// Terminal modes (RFC 4254 section 8): what the client's terminal is set to, turned into what `stty` takes, so that
// a new pseudo-terminal can be set the same way (step 14).
import type { TerminalModes } from 'ssh2';

/** The special characters, by their SSH name and their `stty` name. */
const characters: Record<string, string> = {
  VINTR: 'intr', VQUIT: 'quit', VERASE: 'erase', VKILL: 'kill', VEOF: 'eof', VEOL: 'eol', VEOL2: 'eol2',
  VSTART: 'start', VSTOP: 'stop', VSUSP: 'susp', VREPRINT: 'rprnt', VWERASE: 'werase', VLNEXT: 'lnext',
  VDISCARD: 'discard', VSWTCH: 'swtch',
};

/**
 * The flags `stty` sets on a Linux pseudo-terminal, by their SSH name (`ECHO` is `stty echo`). Left out: the
 * character size, parity and speeds (a pseudo-terminal has none: Linux keeps them as they are), PENDIN (GNU `stty`
 * does not set it) and the characters Linux does not have (VDSUSP, VSTATUS, VFLUSH).
 */
const flags = new Set([
  'IGNPAR', 'PARMRK', 'INPCK', 'ISTRIP', 'INLCR', 'IGNCR', 'ICRNL', 'IUCLC', 'IXON', 'IXANY', 'IXOFF', 'IMAXBEL',
  'IUTF8', 'ISIG', 'ICANON', 'XCASE', 'ECHO', 'ECHOE', 'ECHOK', 'ECHONL', 'NOFLSH', 'TOSTOP', 'IEXTEN', 'ECHOCTL',
  'ECHOKE', 'OPOST', 'OLCUC', 'ONLCR', 'OCRNL', 'ONOCR', 'ONLRET',
]);

/** A character as `stty` takes it, in words without spaces: `^C`, `^?`, a letter, or `undef` for 255 (none). */
function character(value: number): string | undefined {
  if (value === 255) return 'undef';
  if (value < 32) return `^${String.fromCharCode(value + 64)}`;
  if (value === 127) return '^?';
  if (value > 32 && value < 127) return String.fromCharCode(value);
  return undefined; // a space or a byte above 127: no way to write it that every stty takes
}

/**
 * The client's terminal modes as `stty` arguments, one string of words without spaces (`intr ^C -echoctl iutf8`):
 * the modes a pseudo-terminal can take, from the values a client can send. Modes it cannot take, and values
 * that are not a character (above 255) or a flag (0 or 1), are left out, so `stty` never refuses the whole list.
 * Empty if there is nothing to set.
 */
export function sttyArguments(modes: TerminalModes | undefined): string {
  const words: string[] = [];
  for (const [name, value] of Object.entries(modes ?? {})) {
    if (typeof value !== 'number') continue;
    const char = Object.hasOwn(characters, name) ? character(value) : undefined;
    if (char) words.push(characters[name]!, char);
    else if (flags.has(name) && (value === 0 || value === 1)) words.push(`${value ? '' : '-'}${name.toLowerCase()}`);
  }
  return words.join(' ');
}

/** The character that ends input in a terminal with these modes: the client's VEOF, else Ctrl-D. */
export function endOfInput(modes: TerminalModes | undefined): string | undefined {
  const value = modes?.VEOF ?? 4;
  return value < 256 && value !== 255 ? String.fromCharCode(value) : undefined;
}
