import { BinaryHeap } from './binary-heap.js';
import { ByteStreamDecoder } from './byte-stream-decoder.js';
import { CHAR_TO_BYTE, toByteLevel } from './byte-level.js';
import { bpePreTokenizer, preTokenize, type BpePreTokenizer } from './bpe-pre-tokenizer.js';
import type { GgufVocab } from './gguf-vocab.js';
import { GgufTokenizerBase } from './gguf-tokenizer-base.js';
import { TokenizerError, TokenizerMetadataError } from './tokenizer-errors.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './tokenizer.js';

interface Bigram {
  left: number;
  right: number;
  rank: number;
  leftLen: number;
  rightLen: number;
}

/** llama.cpp's priority: lowest merge rank first, then the leftmost pair. */
const bigramBefore = (a: Bigram, b: Bigram): boolean => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

const utf8 = new TextEncoder();
/** Pieces → ids memo; cleared when it grows past this many entries to bound memory. */
const CACHE_LIMIT = 100_000;

/**
 * Byte-level BPE tokenizer from GGUF metadata (`tokenizer.ggml.model = "gpt2"`), reproducing llama.cpp's
 * llm_tokenizer_bpe: special-token split, the `tokenizer.ggml.pre` regex split, GPT-2 byte-to-character
 * mapping, then merges by `tokenizer.ggml.merges` rank (lowest first, leftmost on ties).
 */
export class GgufBpeTokenizer extends GgufTokenizerBase implements Tokenizer {
  readonly kind = 'gguf-bpe' as const;
  readonly addBosByDefault: boolean;
  readonly pre: BpePreTokenizer;
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: GgufVocab) {
    super(vocab);
    if (vocab.model !== 'gpt2') throw new TokenizerError(`GgufBpeTokenizer needs tokenizer.ggml.model "gpt2", got "${vocab.model}"`);
    if (vocab.merges === null) throw new TokenizerMetadataError('tokenizer.ggml.merges', 'missing; a "gpt2" tokenizer needs its BPE merges');
    this.pre = bpePreTokenizer(vocab.pre);
    vocab.merges.forEach((merge, rank) => {
      // As llama.cpp: split at the first space after position 0; the first occurrence of a pair wins.
      const at = merge.indexOf(' ', 1);
      const key = at < 0 ? '\u0000' : `${merge.slice(0, at)}\u0000${merge.slice(at + 1)}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    this.addBosByDefault = vocab.addBos ?? this.pre.addBos;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out = this.openSequence(opts);
    for (const frag of this.splitter.split(text.toWellFormed(), opts.parseSpecial ?? true)) {
      if (typeof frag === 'number') out.push(frag);
      else for (const word of preTokenize(frag, this.pre.regexes)) this.encodeWord(toByteLevel(word), out);
    }
    return this.closeSequence(out, opts);
  }

  private encodeWord(word: string, out: number[]): void {
    let ids = this.cache.get(word);
    if (ids === undefined) {
      ids = this.mergeWord(word);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (const id of ids) out.push(id);
  }

  /** llm_tokenizer_bpe_session::tokenize for one pre-tokenized, byte-level-encoded word. */
  private mergeWord(word: string): number[] {
    const { textToId } = this.vocab;
    if (this.pre.ignoreMerges) {
      const whole = textToId.get(word);
      if (whole !== undefined) return [whole];
    }
    // Byte-level characters are all single UTF-16 units, so symbol i starts as word[i].
    const n = word.length;
    const len = new Array<number>(n).fill(1);
    const prev = Array.from({ length: n }, (_, i) => i - 1);
    const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const queue = new BinaryHeap<Bigram>(bigramBefore);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const rank = this.ranks.get(`${word.substr(left, len[left])}\u0000${word.substr(right, len[right])}`);
      if (rank === undefined) return;
      queue.push({ left, right, rank, leftLen: len[left], rightLen: len[right] });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    for (let b = queue.pop(); b !== undefined; b = queue.pop()) {
      const { left, right } = b;
      if (len[left] !== b.leftLen || len[right] !== b.rightLen || len[left] === 0 || len[right] === 0) continue;
      len[left] += len[right];
      len[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }
    const ids: number[] = [];
    for (let i = 0; i !== -1 && i < n; i = next[i]) {
      const piece = word.substr(i, len[i]);
      const id = textToId.get(piece);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // Not in the vocabulary (only with incomplete vocabularies): emit the characters that are tokens.
      for (const ch of piece) {
        const c = textToId.get(ch);
        if (c !== undefined) ids.push(c);
      }
    }
    return ids;
  }

  protected normalPieceBytes(text: string): Uint8Array {
    return byteLevelToBytes(text);
  }

  /**
   * Exact inverse of the byte-level mapping. llama.cpp's optional "clean_spaces" pass (removing spaces before
   * punctuation for some pre-tokenizers) is not applied: it is lossy and would make streamed and whole
   * decodes disagree.
   * (decode() is this decoder run over all ids: see GgufTokenizerBase.)
   */
  createDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const showSpecial = opts.showSpecial ?? false;
    return new ByteStreamDecoder((id) => this.pieceBytes(id, showSpecial), false);
  }
}

/** Byte-level characters → bytes; a character outside the alphabet passes through as its UTF-8. */
function byteLevelToBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else out.push(...utf8.encode(ch));
  }
  return Uint8Array.from(out);
}
