import { CHAR_TO_BYTE } from '../tokenizer/byte-level.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/**
 * What each token of a vocabulary writes, as bytes, and a trie over those byte strings: the grammar masker walks the
 * trie once per sampled token, advancing the grammar state one byte per trie edge, so tokens sharing a prefix share
 * the work and a dead prefix prunes every token below it. Built once per tokenizer.
 */
export interface TrieNode {
  /** Child per next byte. */
  readonly children: Map<number, TrieNode>;
  /** Tokens whose bytes end exactly here. */
  readonly tokens: number[];
}

export interface TokenVocabulary {
  readonly size: number;
  /** Bytes a token writes when generated (null: a control token, which writes nothing). */
  readonly bytes: readonly (Uint8Array | null)[];
  readonly trie: TrieNode;
  readonly eosIds: readonly number[];
  /**
   * Characters a token adds inside a JSON string when all its bytes are plain string content (no quote, backslash or
   * control byte; whole UTF-8 characters), else -1. Inside a string these tokens need no trie walk.
   */
  readonly plainChars: Int32Array;
  /** Tokens with bytes that are not plain string content (checked one by one inside a string). */
  readonly nonPlain: readonly number[];
  /**
   * Whether every printable ASCII byte can be written as one token (SentencePiece byte fallback and byte-level BPE
   * can): the budget rule of the grammar counts one token per byte of the closing text, which is ASCII.
   */
  readonly hasAsciiBytes: boolean;
}

const utf8 = new TextEncoder();
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** The bytes a token writes in the middle of generated text, from its vocabulary piece. */
export function tokenBytes(tokenizer: Tokenizer, id: number, byteLevel: boolean): Uint8Array | null {
  if (tokenizer.isSpecial(id)) return null;
  const piece = tokenizer.tokenToPiece(id);
  const byte = BYTE_PIECE.exec(piece);
  if (byte) return Uint8Array.of(parseInt(byte[1], 16));
  if (byteLevel) {
    const out = new Uint8Array(piece.length);
    let n = 0;
    for (const ch of piece) {
      const b = CHAR_TO_BYTE.get(ch);
      if (b === undefined) return utf8.encode(piece); // an added (user-defined) token stored as plain text
      out[n++] = b;
    }
    return out.subarray(0, n);
  }
  return utf8.encode(piece.replaceAll('\u2581', ' '));
}

/** Builds the vocabulary's byte strings and trie (about 0.6 s for a 49k vocabulary: once per node and tokenizer). */
export function buildTokenVocabulary(tokenizer: Tokenizer): TokenVocabulary {
  // Byte-level BPE stores a space as "Ġ"; SentencePiece as "▁" with <0xNN> byte fallback.
  const byteLevel = tokenizer.kind === 'gguf-bpe' || (tokenizer.kind === 'tokenizer-json' && tokenizer.pieceToToken('\u0120') !== null);
  const eos = new Set(tokenizer.eosIds);
  const bytes: (Uint8Array | null)[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    let b: Uint8Array | null = null;
    try {
      b = eos.has(id) ? null : tokenBytes(tokenizer, id, byteLevel);
    } catch {
      b = null;
    }
    bytes.push(b);
  }
  return vocabularyFromBytes(bytes, tokenizer.eosIds);
}

/** The vocabulary structures from each token's bytes (null or empty: writes nothing, never allowed but as EOS). */
export function vocabularyFromBytes(tokenBytesList: readonly (Uint8Array | null)[], eosIds: readonly number[]): TokenVocabulary {
  const bytes = tokenBytesList.map((b) => (b !== null && b.length > 0 ? b : null));
  const trie: TrieNode = { children: new Map(), tokens: [] };
  const single = new Set<number>();
  const plainChars = new Int32Array(bytes.length).fill(-1);
  const nonPlain: number[] = [];
  bytes.forEach((b, id) => {
    if (b === null) return;
    if (b.length === 1) single.add(b[0]);
    let node = trie;
    for (const x of b) {
      let child = node.children.get(x);
      if (!child) {
        child = { children: new Map(), tokens: [] };
        node.children.set(x, child);
      }
      node = child;
    }
    node.tokens.push(id);
    const n = plainStringChars(b);
    plainChars[id] = n;
    if (n < 0) nonPlain.push(id);
  });
  return {
    size: bytes.length,
    bytes,
    trie,
    plainChars,
    nonPlain,
    eosIds: [...eosIds],
    hasAsciiBytes: Array.from({ length: 0x7f - 0x20 }, (_, i) => 0x20 + i).every((b) => single.has(b)),
  };
}

/** Characters in `b` if it is plain JSON string content made of whole UTF-8 characters, else -1. */
export function plainStringChars(b: Uint8Array): number {
  let chars = 0;
  for (let i = 0; i < b.length; ) {
    const x = b[i];
    if (x < 0x20 || x === 0x22 || x === 0x5c) return -1;
    let n = 0;
    if (x < 0x80) n = 0;
    else if (x >= 0xc2 && x <= 0xdf) n = 1;
    else if (x >= 0xe0 && x <= 0xef) n = 2;
    else if (x >= 0xf0 && x <= 0xf4) n = 3;
    else return -1;
    if (i + n >= b.length + (n > 0 ? 0 : 1)) return -1;
    const lo = x === 0xe0 ? 0xa0 : x === 0xf0 ? 0x90 : 0x80;
    const hi = x === 0xed ? 0x9f : x === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= n; k++) {
      const c = b[i + k];
      if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return -1;
    }
    i += n + 1;
    chars++;
  }
  return chars;
}
