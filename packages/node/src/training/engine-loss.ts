import { LORA_PROJECTIONS } from '../model/lora-adapter.js';
import type { QuantShard } from '../engine/quant-shard.js';
import type { ShardWeights } from '../engine/shard-weights.js';
import { transpose } from './gemm.js';
import type { LoraSet } from './lora-set.js';
import type { TrainSequence } from './transformer-grad.js';

export class EngineLossError extends Error {
  override name = 'EngineLossError';
}

/** Sum over the counted positions of −log softmax(logits)[target] (logits [T, vocab], the engine's). */
export function logitsLossSum(logits: Float32Array, vocab: number, seq: TrainSequence): number {
  let sum = 0;
  seq.lossMask.forEach((counted, i) => {
    if (!counted) return;
    const o = i * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) if (logits[o + j] > max) max = logits[o + j];
    let z = 0;
    for (let j = 0; j < vocab; j++) z += Math.exp(logits[o + j] - max);
    sum += Math.log(z) + max - logits[o + seq.tokens[i + 1]];
  });
  return sum;
}

/**
 * The loss as the engine computes the adapted model — its quantised products on the file's blocks, the adapter
 * applied as `--lora` applies it, K and V kept as F16 — with every B = 0 the base model's bits. A step reports the
 * loss of its own training forward (which multiplies on the same blocks, straight-through: quantised-frozen.ts);
 * this is the served model's, which tests hold that loss to (within 2e-4 on an F32 file, 5e-3 on Q8_0) instead of each step paying a second
 * forward of every position. `sync` copies the adapter into the shard's arenas.
 */
export class EngineLoss {
  constructor(
    private readonly shard: QuantShard,
    private readonly weights: ShardWeights,
  ) {}

  /** Writes the adapter's current A and B over the ones the shard applies (placed when its weights were loaded; B as Bᵀ). */
  sync(lora: LoraSet): void {
    this.weights.layers.forEach((w, l) => {
      for (const p of LORA_PROJECTIONS) {
        const placed = w.lora?.[p];
        const pair = lora.layers[l][p];
        if (!placed || placed.a.rows !== pair.rank || placed.a.cols !== pair.inDim || placed.width !== pair.outDim || placed.roundA || placed.roundB) {
          throw new EngineLossError(`layer ${l} ${p}: the engine's adapter is not the one being trained`);
        }
        const arena = placed.a.arena;
        arena.f32(placed.a.ptr, pair.a.length).set(pair.a);
        arena.f32(placed.bt, pair.b.length).set(transpose(pair.b, pair.outDim, pair.rank));
      }
    });
  }

  /** The mean loss over the batch's counted positions, through the engine (every position's logits, a cache per sequence). */
  async batchLoss(batch: readonly TrainSequence[]): Promise<number> {
    const vocab = this.shard.config.vocabSize;
    let sum = 0;
    let count = 0;
    for (const seq of batch) {
      const inputs = Array.from(seq.tokens.subarray(0, seq.tokens.length - 1));
      const cache = this.shard.createCache(inputs.length);
      try {
        const out = await this.shard.forward({ kind: 'tokens', tokens: inputs }, cache, { allLogits: true });
        if (out.kind !== 'logits') throw new EngineLossError('the engine gave hidden states, not logits: it does not hold the whole model');
        sum += logitsLossSum(out.logits, vocab, seq);
      } finally {
        cache.clear();
      }
      for (const m of seq.lossMask) if (m) count++;
    }
    return sum / count;
  }
}
