import { GgufTokenType, type GgufVocab } from './gguf-vocab.js';
import { TokenizerError } from './tokenizer-errors.js';
import type { DecodeOptions, StreamDecoder } from './tokenizer.js';

/** What the GGUF tokenizers (SentencePiece-style and byte-level BPE) share: the vocabulary and decoding by stream. */
export abstract class GgufTokenizerBase {
  readonly vocabSize: number;

  protected constructor(protected readonly vocab: GgufVocab) {
    this.vocabSize = vocab.tokens.length;
  }

  abstract createDecoder(opts?: DecodeOptions): StreamDecoder;

  /** A whole decode is a streamed one, flushed: the two can never disagree. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const d = this.createDecoder(opts);
    let s = '';
    for (const id of ids) s += d.push(id);
    return s + d.flush();
  }

  tokenToPiece(id: number): string {
    const t = this.vocab.tokens[id];
    if (t === undefined) throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    return t;
  }

  pieceToToken(piece: string): number | null {
    return this.vocab.textToId.get(piece) ?? null;
  }

  isSpecial(id: number): boolean {
    const type = this.vocab.types[id];
    return type === GgufTokenType.Control || type === GgufTokenType.Unknown;
  }
}
