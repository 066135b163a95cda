import type { ModelConfig } from '../model/model-config.js';

/**
 * Rotary position embedding in the rotate_half convention: within each head, dimension i (< d/2) is paired with
 * i + d/2. Files that store Q/K rows in the interleaved convention (GGUF llama, llama2.c) are permuted into this one
 * at load (see shard-loader.ts), so the engine has a single RoPE.
 *
 *   rope(x)[i]       = x[i] * cos(p·f_i) - x[i + d/2] * sin(p·f_i)
 *   rope(x)[i + d/2] = x[i + d/2] * cos(p·f_i) + x[i] * sin(p·f_i)
 *
 * which is x * cos + gather(x, partner) * signedSin — three elementwise kernels and one gather.
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

/** For a width of `heads` heads: index of each dimension's rotation partner (i <-> i + d/2 within its head). */
export function ropePartners(heads: number, headDim: number): Int32Array {
  const half = headDim / 2;
  const out = new Int32Array(heads * headDim);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < headDim; i++) out[h * headDim + i] = h * headDim + ((i + half) % headDim);
  }
  return out;
}

/**
 * cos and signed sin tables for n consecutive positions from `start`, each row `heads * headDim` wide
 * (the pattern repeats per head).
 */
export function ropeTables(
  freqs: Float64Array,
  heads: number,
  headDim: number,
  start: number,
  n: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const width = heads * headDim;
  const cos = new Float32Array(n * width);
  const sin = new Float32Array(n * width);
  for (let r = 0; r < n; r++) {
    const p = start + r;
    const row = r * width;
    for (let i = 0; i < half; i++) {
      const angle = p * freqs[i];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      for (let h = 0; h < heads; h++) {
        const base = row + h * headDim;
        cos[base + i] = c;
        cos[base + i + half] = c;
        sin[base + i] = -s;
        sin[base + i + half] = s;
      }
    }
  }
  return { cos, sin };
}
