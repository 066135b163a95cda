import { createHash } from 'node:crypto';
import type { ShardKvCache } from '../engine/forward-shard.js';
import { KvCache, type KvCacheType } from '../engine/kv-cache.js';
import type { LayerRange } from '../engine/layer-range.js';

/**
 * A piece of one request's KV cache on the wire (a live move): positions [start, start + count) of the model's
 * layers [startLayer, endLayer), keys then values per layer, with the type and row size it was stored in and the
 * SHA-256 of its bytes — checked like weights, so a cache is only filled from a piece that arrived whole.
 */
export interface KvChunk {
  startLayer: number;
  endLayer: number;
  start: number;
  count: number;
  type: KvCacheType;
  rowBytes: number;
  bytes: Uint8Array;
  sha256: string;
}

/** A KV piece that cannot be used here (another cache type, a short or corrupt copy, a cache that cannot move). */
export class KvMoveError extends Error {
  override name = 'KvMoveError';
}

/** The cache as a KvCache (the kernels' cache, whose rows are plain bytes); the others cannot move. */
export function movableCache(cache: ShardKvCache): KvCache {
  if (!(cache instanceof KvCache)) throw new KvMoveError('this stage\'s KV cache cannot be copied (only the kernels backend\'s can): the request is replayed');
  return cache;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function localLayers(shard: LayerRange, layers: LayerRange): [number, number] {
  if (layers.startLayer < shard.startLayer || layers.endLayer > shard.endLayer || layers.startLayer >= layers.endLayer) {
    throw new KvMoveError(`layers [${layers.startLayer}, ${layers.endLayer}) are not within this stage's [${shard.startLayer}, ${shard.endLayer})`);
  }
  return [layers.startLayer - shard.startLayer, layers.endLayer - shard.startLayer];
}

/** Positions [start, start + count) of `layers` (model layer numbers) from a cache of the shard holding `shard`. */
export function exportKv(cache: ShardKvCache, shard: LayerRange, layers: LayerRange, start: number, count: number): KvChunk {
  const kv = movableCache(cache);
  const [from, to] = localLayers(shard, layers);
  const bytes = kv.readLayerRows(from, to, start, count);
  return { startLayer: layers.startLayer, endLayer: layers.endLayer, start, count, type: kv.type, rowBytes: kv.rowBytes, bytes, sha256: sha256(bytes) };
}

/**
 * Writes a chunk into a cache of the shard holding `shard`, after checking that it is of the cache's type and row
 * size, of the length its positions and layers need, and that its bytes hash as sent. The cache's length is left
 * as it is (the importer sets it once every layer holds the positions).
 */
export function importKv(cache: ShardKvCache, shard: LayerRange, chunk: KvChunk): void {
  const kv = movableCache(cache);
  if (chunk.type !== kv.type) throw new KvMoveError(`the KV rows are ${chunk.type} and this stage's cache is ${kv.type} (start every node with the same --kv-cache): the request is replayed`);
  if (chunk.rowBytes !== kv.rowBytes) throw new KvMoveError(`KV rows of ${chunk.rowBytes} bytes do not fit this cache's rows of ${kv.rowBytes} bytes`);
  const [from, to] = localLayers(shard, chunk);
  const want = kv.rowsBytes(chunk.count, to - from);
  if (chunk.bytes.length !== want) throw new KvMoveError(`KV chunk of ${chunk.bytes.length} bytes, expected ${want} (${chunk.count} positions of ${to - from} layers): a short or long copy`);
  if (sha256(chunk.bytes) !== chunk.sha256) throw new KvMoveError(`KV chunk for layers [${chunk.startLayer}, ${chunk.endLayer}) positions [${chunk.start}, ${chunk.start + chunk.count}) does not match its SHA-256: corrupted on the way`);
  kv.writeLayerRows(from, to, chunk.start, chunk.count, chunk.bytes);
}
