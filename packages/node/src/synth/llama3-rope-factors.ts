import type { RopeScalingLlama3 } from '../model/model-config.js';

/**
 * Llama 3 RoPE frequency factors (one per rotary pair), as convert_hf_to_gguf computes them for the
 * `rope_freqs.weight` tensor: llama.cpp divides each pair's frequency by its factor. Float32 arithmetic is
 * emulated step by step so the values match torch's float32 computation.
 */
export function llama3RopeFactors(headDim: number, ropeTheta: number, scaling: RopeScalingLlama3): Float32Array {
  const f = Math.fround;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldCtx } = scaling;
  const lowFreqWavelen = oldCtx / lowFreqFactor;
  const highFreqWavelen = oldCtx / highFreqFactor;
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) {
    const freq = f(1 / f(Math.pow(f(ropeTheta), f((2 * i) / headDim))));
    const wavelen = f(f(2 * Math.PI) / freq);
    if (wavelen < highFreqWavelen) out[i] = 1;
    else if (wavelen > lowFreqWavelen) out[i] = factor;
    else {
      const smooth = f(f(f(oldCtx / wavelen) - lowFreqFactor) / (highFreqFactor - lowFreqFactor));
      out[i] = f(1 / f(f(f(1 - smooth) / factor) + smooth));
    }
  }
  return out;
}
