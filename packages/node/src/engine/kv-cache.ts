import * as tf from '@tensorflow/tfjs-core';

/**
 * The attention cache of one request on one shard: for each of the shard's layers, the keys and values of every
 * position seen so far. Keys are kept transposed, [kvHeads, headDim, T], and values as [kvHeads, T, headDim], so that
 * attention is two plain batched matMuls with no transpose per token.
 */
export class KvCache {
  private keys: (tf.Tensor3D | null)[];
  private values: (tf.Tensor3D | null)[];
  /** Number of positions stored (the same for every layer once a forward pass completes). */
  length = 0;

  constructor(
    readonly numLayers: number,
    /** Hard limit: the context length this cache may grow to. */
    readonly capacity: number,
  ) {
    this.keys = new Array(numLayers).fill(null);
    this.values = new Array(numLayers).fill(null);
  }

  /** Appends n new positions for layer `layer` (shard-local index) and returns the full keys and values. */
  append(layer: number, kT: tf.Tensor3D, v: tf.Tensor3D): { kT: tf.Tensor3D; v: tf.Tensor3D } {
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    // Called inside the forward pass's tf.tidy: keep() stops tidy from freeing what the cache holds on to.
    const newK = tf.keep(oldK ? (tf.concat([oldK, kT], 2) as tf.Tensor3D) : kT.clone());
    const newV = tf.keep(oldV ? (tf.concat([oldV, v], 1) as tf.Tensor3D) : v.clone());
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = newK;
    this.values[layer] = newV;
    return { kT: newK, v: newV };
  }

  /** Bytes held by this cache's tensors. */
  bytes(): number {
    let total = 0;
    for (const t of this.keys) if (t) total += t.size * 4;
    for (const t of this.values) if (t) total += t.size * 4;
    return total;
  }

  /** Frees every tensor; the cache is empty afterwards. */
  clear(): void {
    for (const t of this.keys) t?.dispose();
    for (const t of this.values) t?.dispose();
    this.keys.fill(null);
    this.values.fill(null);
    this.length = 0;
  }
}
