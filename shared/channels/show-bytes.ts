// Bytes made readable, the way Python's repr() shows a byte string (as the original series printed them).

/** `'a'`, `'\r'`, `'\x03'`, `"it's"`: printable ASCII as it is, everything else escaped. */
export function showBytes(data: Buffer): string {
  // Like repr(), use single quotes unless the bytes hold a single quote and no double quote.
  const quote = data.includes(0x27) && !data.includes(0x22) ? '"' : "'";
  let text = '';
  for (const byte of data) {
    const char = String.fromCharCode(byte);
    if (char === '\\' || char === quote) text += `\\${char}`;
    else if (char === '\t') text += '\\t';
    else if (char === '\n') text += '\\n';
    else if (char === '\r') text += '\\r';
    else if (byte >= 0x20 && byte < 0x7f) text += char;
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `${quote}${text}${quote}`;
}
