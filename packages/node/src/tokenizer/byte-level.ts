/**
 * GPT-2's byte-level alphabet: every byte maps to one printable code point (space → "Ġ", newline → "Ċ"), so a
 * byte-level BPE vocabulary stores arbitrary bytes as ordinary strings.
 */
function buildByteToChar(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map: string[] = new Array(256);
  const isPrintable = new Set(printable);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = String.fromCodePoint(isPrintable.has(b) ? b : 256 + next++);
  }
  return map;
}

/** byte → its byte-level character. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** byte-level character → byte. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

/** The byte-level form of a string: its UTF-8 bytes, each as one alphabet character. */
export function toByteLevel(text: string): string {
  const bytes = utf8.encode(text);
  let out = '';
  for (const b of bytes) out += BYTE_TO_CHAR[b];
  return out;
}
