import { GgufTokenType, SpecialTokenSplitter, type GgufVocab } from './gguf-vocab.js';
import { TokenizerError } from './tokenizer-errors.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder } from './tokenizer.js';

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * What the GGUF tokenizers (SentencePiece-style and byte-level BPE) share: the vocabulary, BOS/EOS framing of an
 * encoding, the bytes each piece renders as, and decoding by stream. The two differ only in how text is split into
 * pieces and how a normal piece's text maps to bytes (`normalPieceBytes`).
 */
export abstract class GgufTokenizerBase {
  readonly vocabSize: number;
  readonly bosId: number | null;
  /** Tokens that end generation (EOS, end-of-turn). */
  readonly eosIds: readonly number[];
  protected readonly addEos: boolean;
  protected readonly splitter: SpecialTokenSplitter;
  private readonly pieceCache: (Uint8Array | undefined)[];

  protected constructor(protected readonly vocab: GgufVocab) {
    this.vocabSize = vocab.tokens.length;
    this.bosId = vocab.bosId;
    this.eosIds = vocab.eogIds;
    this.addEos = vocab.addEos ?? false;
    this.splitter = new SpecialTokenSplitter(vocab);
    this.pieceCache = new Array(this.vocabSize);
  }

  abstract readonly addBosByDefault: boolean;
  abstract createDecoder(opts?: DecodeOptions): StreamDecoder;
  /** The bytes of a normal (not byte, control or user-defined) piece. */
  protected abstract normalPieceBytes(text: string): Uint8Array;

  /** The start of an encoding: BOS when asked for (or by default when the model wants it). */
  protected openSequence(opts: EncodeOptions): number[] {
    const addSpecial = opts.addBos ?? true;
    if (!(addSpecial && (opts.addBos === true || this.addBosByDefault))) return [];
    if (this.bosId === null) throw new TokenizerError('this model has no BOS token; encode with addBos: false');
    return [this.bosId];
  }

  /** The end of an encoding: EOS when the model asks for it (and special tokens were not turned off). */
  protected closeSequence(out: number[], opts: EncodeOptions): number[] {
    if ((opts.addBos ?? true) && this.addEos && this.vocab.eosId !== null) out.push(this.vocab.eosId);
    return out;
  }

  /** What a token renders as, cached: control tokens as nothing unless shown, <0xNN> as that byte. */
  protected pieceBytes(id: number, showSpecial: boolean): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    const type = this.vocab.types[id];
    if (type === GgufTokenType.Control || type === GgufTokenType.Unknown) {
      return showSpecial ? utf8.encode(this.vocab.tokens[id]) : EMPTY;
    }
    let bytes = this.pieceCache[id];
    if (bytes === undefined) {
      const text = this.vocab.tokens[id];
      if (type === GgufTokenType.UserDefined) bytes = utf8.encode(text);
      else if (type === GgufTokenType.Normal) bytes = this.normalPieceBytes(text);
      else if (type === GgufTokenType.Byte) {
        const m = BYTE_PIECE.exec(text);
        bytes = m ? Uint8Array.of(parseInt(m[1], 16)) : this.normalPieceBytes(text);
      } else bytes = EMPTY; // unused/undefined tokens render as nothing, as in llama.cpp
      this.pieceCache[id] = bytes;
    }
    return bytes;
  }

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
