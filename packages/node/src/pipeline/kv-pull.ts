import type { ShardKvCache } from '../engine/forward-shard.js';
import type { LayerRange } from '../engine/layer-range.js';
import { importKv, KvMoveError, movableCache, type KvChunk } from './kv-chunk.js';
import type { KvSource } from './kv-move-control.js';

/** Most bytes of one piece: a large copy goes in pieces, so the nodes at both ends serve other work between them. */
const PIECE_BYTES = 1 << 20;

/**
 * Fills positions [start, start + count) of every layer of `cache` (a shard holding `shard`) from `sources`, piece by
 * piece, each piece checked (kv-chunk.ts) and for exactly the positions and layers asked. The cache's length is left
 * to the caller. Resolves with the bytes copied; throws a KvMoveError on the first bad piece, or once `stillOpen`
 * says the request was freed meanwhile.
 */
export async function pullKv(
  cache: ShardKvCache,
  shard: LayerRange,
  sources: readonly KvSource[],
  start: number,
  count: number,
  pull: (source: KvSource, start: number, count: number) => Promise<KvChunk>,
  stillOpen: () => boolean,
): Promise<number> {
  const perPosition = movableCache(cache).rowsBytes(1, shard.endLayer - shard.startLayer);
  const step = Math.max(1, Math.floor(PIECE_BYTES / perPosition));
  let bytes = 0;
  for (let at = start; at < start + count; at += step) {
    const n = Math.min(step, start + count - at);
    const chunks = await Promise.all(sources.map((src) => pull(src, at, n)));
    if (!stillOpen()) throw new KvMoveError('the request was freed during its move');
    chunks.forEach((c, i) => {
      const src = sources[i];
      if (c.start !== at || c.count !== n || c.startLayer !== src.startLayer || c.endLayer !== src.endLayer) {
        throw new KvMoveError(`a KV piece for positions [${c.start}, ${c.start + c.count}) of layers [${c.startLayer}, ${c.endLayer}) came for [${at}, ${at + n}) of [${src.startLayer}, ${src.endLayer})`);
      }
      importKv(cache, shard, c);
      bytes += c.bytes.length;
    });
  }
  return bytes;
}
