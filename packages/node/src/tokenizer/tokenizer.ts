/** Options for {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Prepend the BOS token. Default: what the model asks for (GGUF `tokenizer.ggml.add_bos_token`, or the
   * tokenizer.json post-processor). `false` adds no special tokens at all.
   */
  addBos?: boolean;
  /**
   * Turn special-token text such as `<|im_start|>` or `<s>` into the special token (default true, as
   * llama.cpp's server and Hugging Face do; a rendered chat template relies on it). Pass false to keep
   * untrusted text literal.
   */
  parseSpecial?: boolean;
}

/** Options for {@link Tokenizer.decode} and {@link Tokenizer.createDecoder}. */
export interface DecodeOptions {
  /** Render control tokens (BOS, EOS, `<|im_end|>`, ...) as their text. Default false: they render as nothing. */
  showSpecial?: boolean;
  /**
   * The ids continue earlier text (e.g. generated tokens after a prompt). SentencePiece-style tokenizers
   * then keep a leading space, which at the start of a text is only the word-boundary marker they added.
   */
  continuation?: boolean;
}

/**
 * Incremental detokenizer for streaming: `push` returns only text that is complete, so a character split over
 * several byte tokens (`<0xE2>` `<0x9C>` `<0x85>`) or byte-level BPE pieces comes out whole, once.
 * The concatenation of all `push` results and `flush()` equals `decode` of all the ids.
 */
export interface StreamDecoder {
  push(id: number): string;
  /** Ends the stream: returns what is still held back (an incomplete UTF-8 tail becomes U+FFFD). */
  flush(): string;
}

/** Text ↔ token ids for one model. */
export interface Tokenizer {
  /** Which implementation: tokenizer.json, GGUF SentencePiece ("llama") or GGUF byte-level BPE ("gpt2"). */
  readonly kind: 'tokenizer-json' | 'gguf-spm' | 'gguf-bpe';
  /** Number of token ids (largest id + 1). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  /** Tokens that end generation (EOS, end-of-turn such as `<|im_end|>` / `<|eot_id|>`). */
  readonly eosIds: readonly number[];
  /** Whether `encode` prepends BOS by default. */
  readonly addBosByDefault: boolean;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  createDecoder(opts?: DecodeOptions): StreamDecoder;
  /** The vocabulary entry as stored, e.g. `▁Once`, `Ġworld`, `<0x0A>`, `<|im_end|>`. */
  tokenToPiece(id: number): string;
  /** The id of a vocabulary entry given its stored text, or null. */
  pieceToToken(piece: string): number | null;
  /** Control/special tokens (BOS, EOS, chat markers), which decode to nothing unless asked. */
  isSpecial(id: number): boolean;
}
