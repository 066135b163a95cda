import type { ModelFile } from './model-file.js';

/**
 * Average stored bytes per weight of the model's layer matrices as the file holds them (F32 4, Q8_0 1.0625,
 * Q4_K_M ≈ 0.6): the engine keeps weights in the file's encoding, so this is what a layer costs in memory and in
 * bytes read per token.
 */
export function storedBytesPerWeight(model: Pick<ModelFile, 'tensors'>): number {
  let bytes = 0;
  let values = 0;
  for (const t of model.tensors.values()) {
    if (t.shape.length !== 2 || !t.name.startsWith('blk.')) continue;
    bytes += t.byteLength;
    values += t.shape[0] * t.shape[1];
  }
  return values > 0 ? bytes / values : 4;
}

/** The storage type holding most of the layers' matrix bytes (a Q4_K_M file: Q4_K), or null for a file without layers. */
export function dominantWeightType(model: Pick<ModelFile, 'tensors'>): string | null {
  const bytes = new Map<string, number>();
  for (const t of model.tensors.values()) {
    if (t.shape.length === 2 && t.name.startsWith('blk.')) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + t.byteLength);
  }
  let best: string | null = null;
  for (const [type, n] of bytes) if (best === null || n > bytes.get(best)!) best = type;
  return best;
}
