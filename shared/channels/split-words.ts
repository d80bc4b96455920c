// A command line split into words the way a POSIX shell splits simple words, without running any shell.

/**
 * `echo 'a  b' "c\"d" e\ f` gives `['echo', 'a  b', 'c"d', 'e f']`. Single quotes keep everything; double
 * quotes keep everything but `\"`, `\\`, `` \` `` and `\$`; a backslash outside quotes keeps the next character.
 * No variables, globs or other expansions. Returns an error message for an unterminated quote.
 */
export function splitWords(line: string): string[] | { error: string } {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === ' ' || char === '\t' || char === '\n') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (char === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) return { error: 'unterminated quoted string' };
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (char === '"') {
      word ??= '';
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === '\\' && '"\\`$'.includes(line[i + 1] ?? '')) i++;
        word += line[i];
      }
      if (i >= line.length) return { error: 'unterminated quoted string' };
    } else if (char === '\\') {
      i++;
      if (i < line.length && line[i] !== '\n') word = (word ?? '') + line[i];
    } else {
      word = (word ?? '') + char;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}
