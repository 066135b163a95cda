/** A model file or folder that cannot be used, with the file and the reason a user can act on. */
export class ModelFileError extends Error {
  override name = 'ModelFileError';
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}

/** A tensor stored in a type edge-node cannot dequantise. */
export class UnsupportedTensorTypeError extends ModelFileError {
  constructor(file: string, readonly tensor: string, readonly typeName: string) {
    super(file, `tensor ${tensor} has type ${typeName}, which edge-node does not support (supported: F32, F16, BF16, Q8_0, Q4_0)`);
    this.name = 'UnsupportedTensorTypeError';
  }
}

/** An architecture edge-node has no forward pass for. */
export class UnsupportedArchitectureError extends ModelFileError {
  constructor(file: string, readonly architecture: string) {
    super(file, `architecture "${architecture}" is not supported (supported: llama, mistral, qwen2)`);
    this.name = 'UnsupportedArchitectureError';
  }
}

/** A model file that ends before the data its header promises (an interrupted download or copy). */
export class TruncatedModelFileError extends ModelFileError {
  constructor(file: string, reason: string) {
    super(file, `${reason} — the file is truncated (re-download or re-copy it)`);
    this.name = 'TruncatedModelFileError';
  }
}

/** A tensor missing, or with a shape that does not match the model's configuration. */
export class TensorShapeError extends ModelFileError {
  constructor(file: string, readonly tensor: string, reason: string) {
    super(file, `tensor ${tensor}: ${reason}`);
    this.name = 'TensorShapeError';
  }
}

/** A LoRA adapter that cannot be used with this base model: the file, the tensor (when one is to blame) and why. */
export class LoraAdapterError extends ModelFileError {
  constructor(file: string, reason: string, readonly tensor: string | null = null) {
    super(file, tensor === null ? reason : `LoRA tensor ${tensor}: ${reason}`);
    this.name = 'LoraAdapterError';
  }
}
