import * as tf from '@tensorflow/tfjs-core';
import { appendColumns } from './fused-kernels.js';

/**
 * The attention cache of one request on one shard: for each of the shard's layers and each KV head, the keys
 * [T, headDim] and the values transposed [headDim, T] of every position seen so far. In these layouts the cache is
 * the *first* operand of both attention matMuls (keys · queriesᵀ and valuesᵀ · probabilities), which the wasm matmul
 * reads in place; as the second operand it would be repacked on every token.
 */
export class KvCache {
  private readonly keys: (tf.Tensor2D | null)[][];
  private readonly valuesT: (tf.Tensor2D | null)[][];
  /** Number of positions stored (the same for every layer once a forward pass completes). */
  length = 0;

  constructor(
    readonly numLayers: number,
    readonly kvHeads: number,
    /** Hard limit: the context length this cache may grow to. */
    readonly capacity: number,
  ) {
    this.keys = Array.from({ length: numLayers }, () => new Array(kvHeads).fill(null));
    this.valuesT = Array.from({ length: numLayers }, () => new Array(kvHeads).fill(null));
  }

  /** Appends n positions for one layer (shard-local index) and KV head; returns the whole keys and valuesᵀ. */
  append(layer: number, head: number, keys: tf.Tensor2D, valuesT: tf.Tensor2D): { keys: tf.Tensor2D; valuesT: tf.Tensor2D } {
    const oldK = this.keys[layer][head];
    const oldV = this.valuesT[layer][head];
    // Called inside the forward pass's tf.tidy: keep() stops tidy from freeing what the cache holds on to.
    const k = tf.keep(oldK ? tf.concat([oldK, keys], 0) : keys.clone());
    const v = tf.keep(oldV ? appendColumns(oldV, valuesT) : valuesT.clone());
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer][head] = k;
    this.valuesT[layer][head] = v;
    return { keys: k, valuesT: v };
  }

  /** Bytes held by this cache's tensors. */
  bytes(): number {
    let total = 0;
    for (const layer of [...this.keys, ...this.valuesT]) for (const t of layer) if (t) total += t.size * 4;
    return total;
  }

  /** Frees every tensor; the cache is empty afterwards. */
  clear(): void {
    for (const layer of [...this.keys, ...this.valuesT]) {
      for (let h = 0; h < layer.length; h++) {
        layer[h]?.dispose();
        layer[h] = null;
      }
    }
    this.length = 0;
  }
}
