import * as tf from '@tensorflow/tfjs-core';
import { ShardInputError, type ShardKvCache } from './forward-shard.js';

/**
 * The attention cache of one request on a TfjsShard: for each layer, keys and values [kvHeads, T, headDim] in F32.
 * A pass appends its positions by concatenation (a new tensor per layer per pass: simple, and fine for the
 * reference backend; the kernels' cache is preallocated instead).
 */
export class TfjsKvCache implements ShardKvCache {
  length = 0;
  private keys: (tf.Tensor3D | null)[];
  private values: (tf.Tensor3D | null)[];
  /** Forward passes using it now (they pause between layers): a clear() meanwhile waits for the last to end. */
  private holds = 0;
  private clearWhenReleased = false;

  constructor(
    readonly numLayers: number,
    readonly capacity: number,
  ) {
    this.keys = new Array<null>(numLayers).fill(null);
    this.values = new Array<null>(numLayers).fill(null);
  }

  /**
   * Appends a pass's keys and values ([kvHeads, n, headDim]) to layer `l` and returns the layer's whole cache. Called
   * inside the pass's tf.tidy: what the cache keeps is kept from it, what it drops is freed.
   */
  append(l: number, keys: tf.Tensor3D, values: tf.Tensor3D): { keys: tf.Tensor3D; values: tf.Tensor3D } {
    const k = tf.keep(this.keys[l] ? tf.concat([this.keys[l]!, keys], 1) : keys.clone());
    const v = tf.keep(this.values[l] ? tf.concat([this.values[l]!, values], 1) : values.clone());
    this.keys[l]?.dispose();
    this.values[l]?.dispose();
    this.keys[l] = k;
    this.values[l] = v;
    return { keys: k, values: v };
  }

  copyPrefix(from: ShardKvCache, positions: number): void {
    if (!(from instanceof TfjsKvCache) || from.numLayers !== this.numLayers) throw new ShardInputError('a KV cache can only copy one of the same shard');
    if (positions > from.length || positions > this.capacity) throw new ShardInputError(`cannot copy ${positions} positions from a cache holding ${from.length} into one of ${this.capacity}`);
    for (let l = 0; l < this.numLayers; l++) {
      this.keys[l]?.dispose();
      this.values[l]?.dispose();
      const k = from.keys[l];
      const v = from.values[l];
      this.keys[l] = k && positions > 0 ? tf.slice(k, [0, 0, 0], [-1, positions, -1]) : null;
      this.values[l] = v && positions > 0 ? tf.slice(v, [0, 0, 0], [-1, positions, -1]) : null;
    }
    this.length = positions;
  }

  truncate(length: number): void {
    if (this.holds > 0) throw new ShardInputError('a KV cache cannot be cut back while a forward pass is using it');
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new ShardInputError(`cannot cut a cache holding ${this.length} positions back to ${length}`);
    for (let l = 0; l < this.numLayers; l++) {
      const k = this.keys[l];
      const v = this.values[l];
      this.keys[l] = k && length > 0 ? tf.keep(tf.slice(k, [0, 0, 0], [-1, length, -1])) : null;
      this.values[l] = v && length > 0 ? tf.keep(tf.slice(v, [0, 0, 0], [-1, length, -1])) : null;
      k?.dispose();
      v?.dispose();
    }
    this.length = length;
  }

  bytes(): number {
    let total = 0;
    for (const t of [...this.keys, ...this.values]) total += (t?.size ?? 0) * 4;
    return total;
  }

  /** Keeps its tensors for a forward pass that may pause part-way; see KvCache.hold. */
  hold(): () => void {
    if (this.clearWhenReleased) throw new ShardInputError('this KV cache was freed');
    this.holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.holds === 0 && this.clearWhenReleased) {
        this.clearWhenReleased = false;
        this.clear();
      }
    };
  }

  clear(): void {
    if (this.holds > 0) {
      this.clearWhenReleased = true;
      return;
    }
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(null);
    this.values.fill(null);
    this.length = 0;
  }
}
