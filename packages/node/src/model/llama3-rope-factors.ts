import type { RopeScalingLlama3 } from './model-config.js';

/**
 * Llama 3.x RoPE frequency divisors, one per rotary pair (headDim / 2), as transformers computes them and
 * convert_hf_to_gguf stores them in `rope_freqs.weight` (llama.cpp divides each pair's frequency by its divisor):
 * high frequencies unchanged, low ones divided by `factor`, a smooth ramp in between. Float32 arithmetic is
 * emulated step by step so the values match torch's float32 computation bit for bit (the synthetic models of
 * @edge-node/testkit write these as their GGUF files' divisors).
 */
export function llama3RopeDivisors(scaling: RopeScalingLlama3, headDim: number, ropeTheta: number): Float32Array {
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

/** The parameter sets Meta's Llama 3.x releases use (factor 8 for 3.1/3.3, 32 for 3.2). */
const KNOWN: readonly Omit<RopeScalingLlama3, 'factor'>[] = [
  { type: 'llama3', lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
];

/**
 * GGUF stores Llama 3 scaling only as the precomputed `rope_freqs.weight` divisors. Recover the parameters
 * by matching the known parameter sets (factor = the largest divisor); null when none reproduces them.
 */
export function matchLlama3Scaling(divisors: Float32Array, headDim: number, ropeTheta: number): RopeScalingLlama3 | null {
  if (divisors.length !== headDim / 2) return null;
  const factor = divisors.reduce((a, b) => Math.max(a, b), 0);
  for (const known of KNOWN) {
    const candidate: RopeScalingLlama3 = { ...known, factor };
    const expected = llama3RopeDivisors(candidate, headDim, ropeTheta);
    if (expected.every((v, i) => Math.abs(v - divisors[i]) <= 1e-4 * v)) return candidate;
  }
  return null;
}
