import { KV_CACHE_TYPES, type KvCacheType } from '../engine/kv-cache.js';
import type { LayerRange } from '../engine/layer-range.js';
import { parseOpening, type FrameLimits, type RequestOpening } from './activation-frame.js';
import { KvMoveError, type KvChunk } from './kv-chunk.js';

/**
 * The control requests of a live move (`/edge-node/control`). The coordinator asks each stage of the new route to
 * `kv-adopt` the request under its new wire id: the stage pulls positions [start, start + count) of its layers from
 * the stages of the old route that hold them (`kv-read`, or a local copy when it is one of them), checks each piece
 * (kv-chunk.ts), and only then counts them. A first part (start 0) opens the request there; later parts add the
 * positions decoded meanwhile (pre-copy, then the delta at the switch). A `kv-read` may ask for positions the old
 * stage is still computing: it is answered once its step is done (the last round reads ahead of the switch).
 */

/** Where some of a new stage's layers are now: a stage of the old route, under the request's old wire id. */
export interface KvSource extends LayerRange {
  peer: string;
  rid: string;
}

export interface KvReadRequest extends LayerRange {
  op: 'kv-read';
  model: string;
  rid: string;
  start: number;
  count: number;
  /** As KvAdoptRequest's. */
  computing?: number;
}

export interface KvAdoptRequest {
  op: 'kv-adopt';
  model: string;
  /** The request's new wire id. */
  rid: string;
  stage: number;
  /** The request as the new route serves it (the replay's opening: the history as prompt, the draws made). */
  opening: RequestOpening;
  start: number;
  count: number;
  /** Covering the stage's layers exactly, in order. */
  sources: KvSource[];
  /**
   * A part before the switch: it only fills the cache. The request's first step on this route is held until a part
   * without it (the switch's) is in — so a coordinator that does not mark its rounds still has its steps served.
   */
  precopy?: boolean;
  /**
   * The last round reads ahead: the position the step going out with it computes on the old route. Rows from it on
   * are read once that step is computed there (until then such a row may be a rejected draft the step drops).
   */
  computing?: number;
}

export type KvReadReply = { ok: true; chunk: KvChunk };
export type KvAdoptReply = { ok: true; positions: number; copiedBytes: number };

/** Throws unless `sources` cover `shard`'s layers exactly, in order (a cache is never left with a layer unfilled). */
export function checkCoverage(sources: readonly KvSource[], shard: LayerRange): void {
  let at = shard.startLayer;
  for (const s of sources) {
    if (s.startLayer !== at || s.endLayer <= s.startLayer) break;
    at = s.endLayer;
  }
  if (at !== shard.endLayer || sources.length === 0) {
    throw new KvMoveError(`the KV sources (${sources.map((s) => `[${s.startLayer}, ${s.endLayer})`).join(', ')}) do not cover this stage's layers [${shard.startLayer}, ${shard.endLayer}) in order`);
  }
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) throw new KvMoveError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function whole(o: Record<string, unknown>, key: string, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new KvMoveError(`${String(o.op ?? 'KV chunk')}: ${key} must be a whole number up to ${max}`);
  return v;
}

function text(o: Record<string, unknown>, key: string, max: number): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new KvMoveError(`${String(o.op)}: ${key} must be a string of 1..${max} characters`);
  return v;
}

/** A `kv-read` as a peer sent it, its numbers within the model's layers and context. */
export function parseKvRead(body: unknown, numLayers: number, maxContext: number): KvReadRequest {
  const b = record(body, 'kv-read');
  const r: KvReadRequest = { op: 'kv-read', model: text(b, 'model', 512), rid: text(b, 'rid', 96), startLayer: whole(b, 'startLayer', numLayers), endLayer: whole(b, 'endLayer', numLayers), start: whole(b, 'start', maxContext), count: whole(b, 'count', maxContext) };
  if (b.computing !== undefined) r.computing = whole(b, 'computing', maxContext);
  if (r.startLayer >= r.endLayer) throw new KvMoveError('kv-read: startLayer must be below endLayer');
  return r;
}

/** A `kv-adopt` as a peer sent it (its opening checked as an activation frame's). */
export function parseKvAdopt(body: unknown, numLayers: number, limits: FrameLimits): KvAdoptRequest {
  const b = record(body, 'kv-adopt');
  if (!Array.isArray(b.sources) || b.sources.length === 0 || b.sources.length > limits.maxRoute) throw new KvMoveError(`kv-adopt: sources must list 1..${limits.maxRoute} stages`);
  const sources = b.sources.map((v: unknown): KvSource => {
    const s = record(v, 'kv-adopt: a source');
    return { peer: text(s, 'peer', 128), rid: text(s, 'rid', 96), startLayer: whole(s, 'startLayer', numLayers), endLayer: whole(s, 'endLayer', numLayers) };
  });
  return {
    op: 'kv-adopt',
    model: text(b, 'model', 512),
    rid: text(b, 'rid', 96),
    stage: whole(b, 'stage', limits.maxRoute - 1),
    opening: parseOpening(b.opening, limits),
    start: whole(b, 'start', limits.maxContext),
    count: whole(b, 'count', limits.maxContext),
    sources,
    ...(b.precopy === true ? { precopy: true } : {}),
    ...(b.computing !== undefined ? { computing: whole(b, 'computing', limits.maxContext) } : {}),
  };
}

/** A chunk as a peer sent it, its fields checked for type (its contents are checked by importKv). */
export function parseKvChunk(body: unknown): KvChunk {
  const b = record(body, 'KV chunk');
  const n = (key: string) => whole(b, key, 2 ** 31);
  const [startLayer, endLayer, start, count, rowBytes] = [n('startLayer'), n('endLayer'), n('start'), n('count'), n('rowBytes')];
  if (!KV_CACHE_TYPES.includes(b.type as KvCacheType)) throw new KvMoveError(`KV chunk: unknown cache type ${JSON.stringify(b.type)?.slice(0, 20)}`);
  if (!(b.bytes instanceof Uint8Array)) throw new KvMoveError('KV chunk: bytes missing');
  if (typeof b.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.sha256)) throw new KvMoveError('KV chunk: sha256 must be 64 hex digits');
  return { startLayer, endLayer, start, count, type: b.type as KvCacheType, rowBytes, bytes: b.bytes, sha256: b.sha256 };
}
