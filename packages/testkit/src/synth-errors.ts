/** A synthetic model that cannot be generated as asked (bad preset, shape, dtype or tokenizer folder). */
export class SyntheticModelError extends Error {
  override name = 'SyntheticModelError';
}

/** A tensor handed to a writer whose data does not match its declared shape or type. */
export class TensorWriteError extends Error {
  override name = 'TensorWriteError';
  constructor(
    readonly tensor: string,
    readonly reason: string,
  ) {
    super(`tensor ${tensor}: ${reason}`);
  }
}
