import type { ModelConfig } from '../model/model-config.js';

/**
 * Rotary position embedding: the frequencies f_i (i < d/2) of each rotated pair. A pair (a, b) at position p turns by
 * p·f_i: a' = a·cos − b·sin, b' = a·sin + b·cos. Which dimensions pair up depends on the file: (2i, 2i+1) in GGUF
 * llama and llama2.c, (i, i + d/2) in Hugging Face and GGUF qwen2 — the kernel takes both (assembly/ops/rope.ts).
 */
export function ropeFrequencies(config: ModelConfig): Float64Array {
  const half = config.headDim / 2;
  const freqs = new Float64Array(half);
  for (let i = 0; i < half; i++) freqs[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / config.headDim);
  const s = config.ropeScaling;
  if (s && s.type === 'llama3') {
    // Llama 3.1+ frequency scaling: long wavelengths are slowed by `factor`, short ones kept, a smooth ramp between.
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / freqs[i];
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        freqs[i] = freqs[i] / s.factor;
      } else {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        freqs[i] = (1 - smooth) * (freqs[i] / s.factor) + smooth * freqs[i];
      }
    }
  }
  return freqs;
}
