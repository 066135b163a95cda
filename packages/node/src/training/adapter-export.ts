import { loraTargetName, LORA_PROJECTIONS, type LoraAdapter } from '../model/lora-adapter.js';
import type { LoraSet } from './lora-set.js';

/**
 * The trained adapter as the LoRA adapter the engine applies and the file holds (model/lora-adapter-file.ts writes it
 * in llama.cpp's format). The arrays are copied: training may go on.
 */
export function toLoraAdapter(set: LoraSet): LoraAdapter {
  const tensors = new Map<string, { rank: number; a: Float32Array; b: Float32Array }>();
  set.layers.forEach((layer, l) => {
    for (const p of LORA_PROJECTIONS) tensors.set(loraTargetName(l, p), { rank: set.rank, a: Float32Array.from(layer[p].a), b: Float32Array.from(layer[p].b) });
  });
  return { alpha: set.alpha, tensors };
}
