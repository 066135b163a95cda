import * as tf from '@tensorflow/tfjs-core';

/**
 * The attention cache of one request on one shard: for each of the shard's layers and each KV head, the keys
 * [T, headDim] and the values transposed [headDim, T] of every position seen so far. In these layouts the cache is
 * the *first* operand of both attention matMuls (keys · queriesᵀ and valuesᵀ · probabilities), which the wasm matmul
 * reads in place; as the second operand it would be repacked on every token.
 */
export class KvCache {
  private readonly keys: tf.Tensor2D[][];
  private readonly valuesT: tf.Tensor2D[][];
  /** Number of positions stored (the same for every layer once a forward pass completes). */
  length = 0;

  constructor(
    readonly numLayers: number,
    /** Hard limit: the context length this cache may grow to. */
    readonly capacity: number,
  ) {
    this.keys = Array.from({ length: numLayers }, () => []);
    this.valuesT = Array.from({ length: numLayers }, () => []);
  }

  /** One layer's cache (shard-local index): per KV head, keys [T, d] and valuesᵀ [d, T]; empty before the first pass. */
  layer(layer: number): { keys: readonly tf.Tensor2D[]; valuesT: readonly tf.Tensor2D[] } {
    return { keys: this.keys[layer], valuesT: this.valuesT[layer] };
  }

  /** Replaces a layer's cache with one that has the new positions appended (called inside the forward pass's tidy). */
  replace(layer: number, keys: tf.Tensor2D[], valuesT: tf.Tensor2D[]): void {
    for (const t of [...this.keys[layer], ...this.valuesT[layer]]) t.dispose();
    // keep(): the forward pass's tf.tidy must not free what the cache holds on to.
    this.keys[layer] = keys.map((t) => tf.keep(t));
    this.valuesT[layer] = valuesT.map((t) => tf.keep(t));
  }

  /** Bytes held by this cache's tensors. */
  bytes(): number {
    let total = 0;
    for (const layer of [...this.keys, ...this.valuesT]) for (const t of layer) total += t.size * 4;
    return total;
  }

  /** Frees every tensor; the cache is empty afterwards. */
  clear(): void {
    for (let l = 0; l < this.numLayers; l++) {
      for (const t of [...this.keys[l], ...this.valuesT[l]]) t.dispose();
      this.keys[l] = [];
      this.valuesT[l] = [];
    }
    this.length = 0;
  }
}
