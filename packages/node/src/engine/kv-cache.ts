import type { KernelArena } from '@edge-node/kernels';
import { ShardInputError, type ShardKvCache } from './forward-shard.js';

/**
 * How the cache stores keys and values: F16 (llama.cpp's default, half the memory), F32 (exact) or Q8_0 (ggml's
 * 8-bit blocks: per 32 values an f16 scale and 32 int8, 34 bytes, a little over a quarter of F32).
 */
export type KvCacheType = 'f16' | 'f32' | 'q8_0';
export const KV_CACHE_TYPES: readonly KvCacheType[] = ['f16', 'f32', 'q8_0'];

/** The kernels' code for a cache type (assembly/ops/attention.ts). */
export function kvTypeCode(t: KvCacheType): number {
  return t === 'f16' ? 1 : t === 'q8_0' ? 2 : 0;
}

/** Bytes per cached value: 4, 2, or 34/32 = 1.0625 (exact in binary: a row of whole blocks has a whole byte count). */
export function kvBytesPerValue(t: KvCacheType): number {
  return t === 'q8_0' ? 34 / 32 : t === 'f16' ? 2 : 4;
}

/** Bytes of one cached row (keys or values of one position in one layer) of kvDim values. */
export function kvRowBytes(t: KvCacheType, kvDim: number): number {
  return kvDim * kvBytesPerValue(t);
}

/** A cache type the model's shape cannot hold. */
export class KvCacheTypeError extends Error {
  override name = 'KvCacheTypeError';
}

/** Throws a KvCacheTypeError when a head of headDim values does not fit the type's blocks (Q8_0: 32 values). */
export function checkKvCacheType(t: KvCacheType, headDim: number): void {
  if (t === 'q8_0' && headDim % 32 !== 0) {
    throw new KvCacheTypeError(`--kv-cache q8_0 needs a head size that is a multiple of 32 (Q8_0 blocks hold 32 values); this model's heads have ${headDim}: use --kv-cache f16`);
  }
}

/** Where one layer's keys and values live: [capacity, kvDim] each, in the arena of the layer's weights. */
export interface LayerKv {
  arena: KernelArena;
  keys: number;
  values: number;
}

/**
 * The attention cache of one request on one shard, preallocated for its whole context at creation (no copy as it
 * grows): for each layer, keys and values (F16 by default, as llama.cpp keeps them; F32 or Q8_0 on request), one row
 * of numKvHeads·headDim values per position.
 */
export class KvCache implements ShardKvCache {
  length = 0;
  private readonly blocks: { arena: KernelArena; ptr: number; bytes: number }[] = [];
  private readonly perLayer: LayerKv[] = [];
  private cleared = false;
  /** Forward passes using it now (they pause between layers): a clear() meanwhile frees it when the last one ends. */
  private holds = 0;
  private clearWhenReleased = false;
  readonly rowBytes: number;

  constructor(
    layerArenas: readonly KernelArena[],
    readonly kvDim: number,
    readonly capacity: number,
    readonly type: KvCacheType = 'f16',
  ) {
    const rowBytes = (this.rowBytes = kvRowBytes(type, kvDim));
    try {
      for (const arena of new Set(layerArenas)) {
        const layers = layerArenas.filter((a) => a === arena).length;
        const bytes = layers * 2 * capacity * rowBytes;
        this.blocks.push({ arena, ptr: arena.alloc(bytes), bytes });
      }
    } catch (err) {
      this.clear();
      throw err;
    }
    const next = new Map(this.blocks.map((b) => [b.arena, b.ptr]));
    for (const arena of layerArenas) {
      const keys = next.get(arena)!;
      const values = keys + capacity * rowBytes;
      next.set(arena, values + capacity * rowBytes);
      this.perLayer.push({ arena, keys, values });
    }
  }

  /** One layer's cache (shard-local index). */
  layer(l: number): LayerKv {
    if (this.cleared) throw new Error('this KV cache was freed');
    return this.perLayer[l];
  }

  copyPrefix(from: ShardKvCache, positions: number): void {
    if (!(from instanceof KvCache) || from.perLayer.length !== this.perLayer.length || from.rowBytes !== this.rowBytes || from.type !== this.type) {
      throw new ShardInputError('a KV cache can only copy one of the same shard');
    }
    if (positions > from.length || positions > this.capacity) throw new ShardInputError(`cannot copy ${positions} positions from a cache holding ${from.length} into one of ${this.capacity}`);
    if (this.held) throw new ShardInputError('a KV cache cannot be overwritten while a forward pass is using it');
    const n = positions * this.rowBytes;
    for (let l = 0; l < this.perLayer.length; l++) {
      // layer() refuses a freed cache, on either side.
      const dst = this.layer(l);
      const src = from.layer(l);
      if (src.arena !== dst.arena) throw new ShardInputError('a KV cache can only copy one of the same shard');
      dst.arena.bytes(dst.keys, n).set(src.arena.bytes(src.keys, n));
      dst.arena.bytes(dst.values, n).set(src.arena.bytes(src.values, n));
    }
    this.length = positions;
  }

  truncate(length: number): void {
    if (this.held) throw new ShardInputError('a KV cache cannot be cut back while a forward pass is using it');
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new ShardInputError(`cannot cut a cache holding ${this.length} positions back to ${length}`);
    // The rows past `length` stay in memory; attention reads only [0, length) and the next pass overwrites them.
    this.length = length;
  }

  /** Bytes `readRows` returns for `count` positions: keys and values of every layer. */
  rowsBytes(count: number, layers = this.perLayer.length): number {
    return layers * 2 * count * this.rowBytes;
  }

  /**
   * A copy of positions [start, start + count) of every layer, keys then values per layer (a prefix cache's block:
   * plain bytes, valid for any cache of the same layers and type).
   */
  readRows(start: number, count: number): Uint8Array {
    return this.readLayerRows(0, this.perLayer.length, start, count);
  }

  /** As readRows, for the shard-local layers [from, to) only (a live move copies the layers it moves). */
  readLayerRows(from: number, to: number, start: number, count: number): Uint8Array {
    this.checkLayers(from, to);
    if (start < 0 || count < 0 || start + count > this.length) throw new ShardInputError(`cannot read positions [${start}, ${start + count}) of a cache holding ${this.length}`);
    const n = count * this.rowBytes;
    const out = new Uint8Array(this.rowsBytes(count, to - from));
    for (let l = from; l < to; l++) {
      const kv = this.layer(l);
      const at = 2 * (l - from) * n;
      out.set(kv.arena.bytes(kv.keys + start * this.rowBytes, n), at);
      out.set(kv.arena.bytes(kv.values + start * this.rowBytes, n), at + n);
    }
    return out;
  }

  /** Writes rows read by `readRows` at `start` (which must be the cache's length); the length grows by `count`. */
  writeRows(start: number, count: number, rows: Uint8Array): void {
    if (start !== this.length) throw new ShardInputError(`cannot write positions [${start}, ${start + count}) to a cache holding ${this.length} of ${this.capacity}`);
    this.writeLayerRows(0, this.perLayer.length, start, count, rows);
    this.length = start + count;
  }

  /**
   * Writes rows read by `readLayerRows` into the shard-local layers [from, to) at positions [start, start + count),
   * leaving the length as it is: an import fills the layers piece by piece and `setLength` makes them count once
   * every layer holds them (a half-filled cache is never read).
   */
  writeLayerRows(from: number, to: number, start: number, count: number, rows: Uint8Array): void {
    this.checkLayers(from, to);
    if (this.held) throw new ShardInputError('a KV cache cannot be overwritten while a forward pass is using it');
    if (start < 0 || count < 0 || start + count > this.capacity) throw new ShardInputError(`cannot write positions [${start}, ${start + count}) to a cache of ${this.capacity}`);
    if (rows.length !== this.rowsBytes(count, to - from)) throw new ShardInputError(`${rows.length} bytes of KV rows do not fit ${count} positions of ${to - from} layers of this cache (${this.rowsBytes(count, to - from)} bytes)`);
    const n = count * this.rowBytes;
    for (let l = from; l < to; l++) {
      const kv = this.layer(l);
      const at = 2 * (l - from) * n;
      kv.arena.bytes(kv.keys + start * this.rowBytes, n).set(rows.subarray(at, at + n));
      kv.arena.bytes(kv.values + start * this.rowBytes, n).set(rows.subarray(at + n, at + 2 * n));
    }
  }

  /** Makes positions [0, length) count (after writeLayerRows filled them in every layer). */
  setLength(length: number): void {
    if (this.held) throw new ShardInputError('a KV cache cannot be changed while a forward pass is using it');
    if (!Number.isInteger(length) || length < 0 || length > this.capacity) throw new ShardInputError(`a cache of ${this.capacity} positions cannot hold ${length}`);
    if (this.cleared) throw new Error('this KV cache was freed');
    this.length = length;
  }

  private checkLayers(from: number, to: number): void {
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > this.perLayer.length || from >= to) {
      throw new ShardInputError(`layers [${from}, ${to}) are not within this cache's ${this.perLayer.length} layers`);
    }
  }

  bytes(): number {
    return this.cleared ? 0 : this.blocks.reduce((s, b) => s + b.bytes, 0);
  }

  /**
   * Keeps its memory for a forward pass that may pause part-way (compute-slices.ts): a clear() before the returned
   * release frees it only then, so a request freed or cancelled mid-pass never has its rows written into memory
   * another cache was given. Refused on a cache already freed (or being freed).
   */
  hold(): () => void {
    if (this.cleared || this.clearWhenReleased) throw new ShardInputError('this KV cache was freed');
    this.holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.holds === 0 && this.clearWhenReleased) this.clear();
    };
  }

  /** A forward pass is using it (its length and contents must not be changed from outside meanwhile). */
  get held(): boolean {
    return this.holds > 0;
  }

  clear(): void {
    if (this.cleared) return;
    if (this.holds > 0) {
      this.clearWhenReleased = true;
      return;
    }
    this.cleared = true;
    this.length = 0;
    for (const b of this.blocks) b.arena.release(b.ptr);
    this.blocks.length = 0;
  }
}
