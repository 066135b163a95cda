import { LORA_PROJECTIONS, loraTargetName, type LoraAdapter, type LoraPair } from '../../src/model/lora-adapter.js';
import type { ModelFile } from '../../src/model/model-file.js';
import { mulberry32 } from '../../src/engine/sampler.js';

export interface RandomLoraOptions {
  rank: number;
  alpha: number;
  seed: number;
  /** Magnitude of A's and B's values (uniform in ±amplitude); B = 0 when zeroB. */
  amplitude?: number;
  zeroB?: boolean;
  /** Layers to adapt (default: all). */
  layers?: number[];
}

/** A LoRA adapter with seeded random A and B on every projection of the given layers of `base`. */
export function randomLoraAdapter(base: ModelFile, o: RandomLoraOptions): LoraAdapter {
  const next = mulberry32(o.seed);
  const amp = o.amplitude ?? 0.1;
  const value = (): number => (next() * 2 - 1) * amp;
  const tensors = new Map<string, LoraPair>();
  const layers = o.layers ?? [...Array(base.config.numLayers).keys()];
  for (const l of layers) {
    for (const p of LORA_PROJECTIONS) {
      const name = loraTargetName(l, p);
      const [out, inF] = base.tensors.get(name)!.shape;
      const a = Float32Array.from({ length: o.rank * inF }, value);
      const b = o.zeroB ? new Float32Array(out * o.rank) : Float32Array.from({ length: out * o.rank }, value);
      tensors.set(name, { rank: o.rank, a, b });
    }
  }
  return { alpha: o.alpha, tensors };
}
