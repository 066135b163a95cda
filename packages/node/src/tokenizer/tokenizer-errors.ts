/** A tokenizer that cannot be built or used, with a reason a user can act on. */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** The model's tokenizer type (GGUF `tokenizer.ggml.model` or pre-tokenizer) has no implementation here. */
export class UnsupportedTokenizerError extends TokenizerError {
  constructor(
    readonly what: string,
    readonly value: string,
    readonly supported: readonly string[],
  ) {
    super(`${what} "${value}" is not supported (supported: ${supported.join(', ')})`);
    this.name = 'UnsupportedTokenizerError';
  }
}

/** A GGUF `tokenizer.ggml.*` key is missing or has the wrong type. */
export class TokenizerMetadataError extends TokenizerError {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`GGUF metadata ${key}: ${reason}`);
    this.name = 'TokenizerMetadataError';
  }
}

/** A chat template that does not parse or fails while rendering. */
export class ChatTemplateError extends TokenizerError {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`chat template: ${reason}`, options);
    this.name = 'ChatTemplateError';
  }
}
