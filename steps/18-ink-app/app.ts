// Step 18's app, the same for every session: a list of the people of Wonderland, one person's page with a note
// you type, and a status bar. React components, written with createElement (h) so that every runtime reads them.
import { Box, Text, useApp, useInput, type Key } from 'ink';
import { createElement as h, useEffect, useReducer, useRef } from 'react';

const people = [
  { name: 'The White Rabbit', about: 'Always late. Carries a pocket watch and a fan.' },
  { name: 'The Cheshire Cat', about: 'Grins, then fades away, grin last.' },
  { name: 'The Mad Hatter', about: 'It is always six o\'clock at his tea party.' },
  { name: 'The Queen of Hearts', about: 'Settles every question the same way: "Off with their head!"' },
  { name: 'The Caterpillar', about: 'Sits on a mushroom, smoking a hookah, and asks "Who are YOU?"' },
];

/** The smallest terminal the app is drawn in whole: its widest page (a wrapped note) and its longest list. */
const MIN_COLS = 48;
const MIN_ROWS = 12;

/** What the step hands the app: who is logged in, the terminal's size, and whether it shows colour. */
export interface AppProps {
  user: string;
  cols: number;
  rows: number;
  colour: boolean;
}

/** Where the user is: the person chosen, the page open (if one is), the note being typed, the notes kept, and done. */
interface State {
  selected: number;
  open?: number;
  typing: string;
  notes: string[];
  done?: boolean;
}

/** The control characters that are keys, alone: what Ink would make of each (Ctrl-C is "c" with ctrl). */
const controlKeys: Record<string, [string, Partial<Key>]> = {
  '\r': ['', { return: true }], '\x7f': ['', { delete: true }], '\b': ['', { backspace: true }], '\x03': ['c', { ctrl: true }],
};

/**
 * The keys in one input. Ink names a key only when a read of the terminal held it alone; keys typed faster than the
 * step reads them (a busy server, a slow link) come as one string, and "grin\r" is no Enter. So: split at each
 * control character that is a key.
 */
function keys(input: string, key: Key): [string, Key][] {
  if (input.length < 2 || !/[\r\x7f\b\x03]/.test(input)) return [[input, key]];
  const named = new Map(Object.entries(controlKeys).map(([char, [name, is]]) => [char, [name, { ...key, ...is }] as [string, Key]]));
  return input.split(/([\r\x7f\b\x03])/).filter(Boolean).map((part) => named.get(part) ?? [part, key]);
}

/** What a key does, from the state before it to the state after it (keys that come together, one after another). */
function pressed(state: State, input: string, key: Key): State {
  if (key.ctrl && input === 'c') return { ...state, done: true };
  if (state.open === undefined) {
    if (input === 'q') return { ...state, done: true };
    if (key.upArrow) return { ...state, selected: (state.selected + people.length - 1) % people.length };
    if (key.downArrow) return { ...state, selected: (state.selected + 1) % people.length };
    if (key.return) return { ...state, open: state.selected, typing: state.notes[state.selected]! };
    return state;
  }
  if (key.escape) return { ...state, open: undefined };
  if (key.return) return { ...state, open: undefined, notes: state.notes.map((note, i) => (i === state.open ? state.typing : note)) };
  if (key.backspace || key.delete) return { ...state, typing: [...state.typing].slice(0, -1).join('') };
  if (!input || key.ctrl || key.meta) return state;
  // Printable characters alone, and no more than fit: a paste of anything is cut to that.
  return { ...state, typing: [...`${state.typing}${input.replace(/\p{C}/gu, '')}`].slice(0, 60).join('') };
}

/** The whole screen: the list (or one person's page), then the status bar on the last row. */
export function App({ user, cols, rows, colour }: AppProps) {
  const { exit } = useApp();
  // The inputs of one read as one update, their keys taken one after another only then: Ink makes an input of each
  // escape sequence, and a paste of them is thousands in one read, which would be thousands of renders.
  const [state, press] = useReducer((before: State, inputs: [string, Key][]) =>
    inputs.flatMap(([input, key]) => keys(input, key)).reduce((now, [each, is]) => pressed(now, each, is), before),
  { selected: 0, typing: '', notes: people.map(() => '') });
  const read = useRef<[string, Key][]>([]);
  useInput((input, key) => {
    if (read.current.push([input, key]) === 1) queueMicrotask(() => press(read.current.splice(0)));
  });
  // q in the list, or Ctrl-C anywhere: the app ends (and the step gives the terminal back).
  useEffect(() => {
    if (state.done) exit();
  }, [state.done, exit]);
  // Too small to draw the app whole (a page of notes needs 48x12): it says so, wrapped to what there is.
  if (cols < MIN_COLS || rows < MIN_ROWS) {
    return h(Box, { width: cols, height: rows, overflow: 'hidden' },
      h(Text, { wrap: 'wrap' }, `This terminal is ${cols}x${rows}: make it ${MIN_COLS}x${MIN_ROWS} or larger, or press q.`));
  }
  const { selected, open, typing, notes } = state;
  const accent = colour ? 'cyan' : undefined;
  const body = open === undefined
    ? [h(Text, { key: 'title', bold: true }, 'Who is who in Wonderland'), h(Text, { key: 'gap' }, ' '),
      ...people.map((person, i) => h(Text, { key: person.name, inverse: i === selected, color: i === selected ? undefined : accent },
        `${i === selected ? '>' : ' '} ${person.name}${notes[i] ? ' *' : ''}`)),
      h(Text, { key: 'gap2' }, ' '), h(Text, { key: 'help', dimColor: colour }, 'Up and down choose, Enter opens, q quits.')]
    : [h(Text, { key: 'title', bold: true, color: accent }, people[open]!.name), h(Text, { key: 'gap' }, ' '),
      h(Text, { key: 'about', wrap: 'wrap' }, people[open]!.about), h(Text, { key: 'gap2' }, ' '),
      h(Text, { key: 'note' }, `Your note: ${typing}`, h(Text, { inverse: true }, ' ')),
      h(Text, { key: 'gap3' }, ' '), h(Text, { key: 'help', dimColor: colour }, 'Type a note; Enter keeps it, Esc goes back.')];
  const status = ` ${user} | ${cols}x${rows}`;
  return h(Box, { flexDirection: 'column', width: cols, height: rows },
    h(Box, { flexDirection: 'column', flexGrow: 1, borderStyle: 'round', borderColor: accent, paddingX: 1, overflow: 'hidden' }, ...body),
    h(Text, { inverse: true, wrap: 'truncate' }, status.padEnd(cols)));
}
