import { LORA_PROJECTIONS, loraTargetName, type LoraAdapter, type LoraPair } from '../../src/model/lora-adapter.js';
import type { ModelFile } from '../../src/model/model-file.js';

/** mulberry32: a seeded stream of uniform numbers in [0, 1). */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
  const next = seeded(o.seed);
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
