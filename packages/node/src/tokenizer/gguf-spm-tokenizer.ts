import { BinaryHeap } from './binary-heap.js';
import { ByteStreamDecoder } from './byte-stream-decoder.js';
import type { GgufVocab } from './gguf-vocab.js';
import { GgufTokenizerBase } from './gguf-tokenizer-base.js';
import { TokenizerError } from './tokenizer-errors.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './tokenizer.js';

interface Bigram {
  left: number;
  right: number;
  score: number;
  /** Combined length when queued; a different current length means one side was merged since (stale). */
  size: number;
}

/** llama.cpp's priority: highest score first, then the leftmost pair. */
const bigramBefore = (a: Bigram, b: Bigram): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

const utf8 = new TextEncoder();

/**
 * SentencePiece-style tokenizer from GGUF metadata (`tokenizer.ggml.model = "llama"`), reproducing llama.cpp's
 * llm_tokenizer_spm: spaces become "▁", a "▁" is prepended at the start and after each special token
 * (add_space_prefix), adjacent symbols are merged best-score-first while the merged text is a vocabulary
 * entry, and leftover characters fall back to <0xNN> byte tokens.
 */
export class GgufSpmTokenizer extends GgufTokenizerBase implements Tokenizer {
  readonly kind = 'gguf-spm' as const;
  readonly addBosByDefault: boolean;
  private readonly addSpacePrefix: boolean;
  /** Token for each byte value (<0xNN>, else the one-character token, else unk). */
  private readonly byteToken: Int32Array;

  constructor(vocab: GgufVocab) {
    super(vocab);
    if (vocab.model !== 'llama') throw new TokenizerError(`GgufSpmTokenizer needs tokenizer.ggml.model "llama", got "${vocab.model}"`);
    this.addBosByDefault = vocab.addBos ?? true;
    this.addSpacePrefix = vocab.addSpacePrefix ?? true;
    this.byteToken = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = vocab.textToId.get(hex) ?? (b < 0x80 ? vocab.textToId.get(String.fromCharCode(b)) : undefined) ?? vocab.unkId;
      this.byteToken[b] = id ?? -1;
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out = this.openSequence(opts);
    let prevSpecial = true;
    for (const frag of this.splitter.split(text.toWellFormed(), opts.parseSpecial ?? true)) {
      if (typeof frag === 'number') {
        out.push(frag);
        prevSpecial = true;
      } else {
        const prefixed = this.addSpacePrefix && prevSpecial ? ` ${frag}` : frag;
        this.tokenizeFragment(prefixed.replaceAll(' ', '\u2581'), out);
        prevSpecial = false;
      }
    }
    return this.closeSequence(out, opts);
  }

  /** llm_tokenizer_spm_session::tokenize over one fragment of already-escaped text. */
  private tokenizeFragment(text: string, out: number[]): void {
    const { textToId, scores } = this.vocab;
    // Symbols are code points; start/len are in UTF-16 units, which only need to be consistent.
    const start: number[] = [];
    const len: number[] = [];
    for (let i = 0; i < text.length; ) {
      const n = text.charCodeAt(i) >= 0xd800 && text.charCodeAt(i) <= 0xdbff ? 2 : 1;
      start.push(i);
      len.push(n);
      i += n;
    }
    const count = start.length;
    if (count === 0) return;
    const prev = Array.from({ length: count }, (_, i) => i - 1);
    const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));
    const queue = new BinaryHeap<Bigram>(bigramBefore);

    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const size = len[left] + len[right];
      const id = textToId.get(text.substr(start[left], size));
      if (id === undefined) return;
      queue.push({ left, right, score: scores[id], size });
    };

    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
      const { left, right } = bigram;
      if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== bigram.size) continue;
      len[left] += len[right];
      len[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }

    // A final symbol is either a vocabulary entry (every merge produced one) or a single unknown character,
    // which goes out as its UTF-8 bytes (llama.cpp's resegment reduces to exactly this).
    for (let i = 0; i !== -1; i = next[i]) {
      const piece = text.substr(start[i], len[i]);
      const id = textToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const b of utf8.encode(piece)) {
        const t = this.byteToken[b];
        if (t < 0) throw new TokenizerError(`cannot encode byte 0x${b.toString(16)}: the vocabulary has no byte token and no <unk>`);
        out.push(t);
      }
    }
  }

  protected normalPieceBytes(text: string): Uint8Array {
    return utf8.encode(text.replaceAll('\u2581', ' '));
  }

  /**
   * Reverses encode, so decode(encode(s)) === s. Unlike llama_detokenize (which keeps the prefix space after a
   * leading BOS), the space added before the first word is always dropped, as SentencePiece and Hugging Face do.
   * (decode() is this decoder run over all ids: see GgufTokenizerBase.)
   */
  createDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const showSpecial = opts.showSpecial ?? false;
    return new ByteStreamDecoder((id) => this.pieceBytes(id, showSpecial), this.addSpacePrefix && !(opts.continuation ?? false));
  }
}
