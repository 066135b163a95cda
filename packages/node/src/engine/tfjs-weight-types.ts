import type { ModelFile } from '../model/model-file.js';
import { ModelFileError } from '../model/model-errors.js';

/** The storage types tfjs computes from: it dequantises them to F32 once, at load. */
export const TFJS_WEIGHT_TYPES: readonly string[] = ['F32', 'F16', 'BF16'];

/** A quantised model given to the tfjs backend. */
export class TfjsWeightTypeError extends ModelFileError {
  constructor(
    file: string,
    readonly tensor: string,
    readonly typeName: string,
  ) {
    super(
      file,
      `tensor ${tensor} is ${typeName}: the tfjs backend computes only F32, F16 and BF16 weights. ` +
        `Use the default kernels backend (leave out --backend tfjs), which multiplies quantised weights directly`,
    );
    this.name = 'TfjsWeightTypeError';
  }
}

/** Throws TfjsWeightTypeError naming the first tensor tfjs cannot compute from; reads no weights. */
export function checkTfjsWeightTypes(model: Pick<ModelFile, 'path' | 'tensors'>): void {
  for (const t of model.tensors.values()) {
    if (!TFJS_WEIGHT_TYPES.includes(t.dtype)) throw new TfjsWeightTypeError(model.path, t.name, t.dtype);
  }
}
