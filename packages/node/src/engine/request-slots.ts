import { kvRowBytes, type KvCacheType } from './kv-cache.js';

/** The most requests a node runs at once when nothing says otherwise; beyond it they wait in the fair queue. */
export const MAX_DEFAULT_SLOTS = 16;

export interface SlotInput {
  /** Bytes this node offers (its memory budget). */
  memoryBytes: number;
  /** Bytes of the model's weights (the whole model: a conservative bound for a node that holds part of it). */
  weightBytes: number;
  numLayers: number;
  /** Values per position per layer for keys (the same for values): KV heads × head size. */
  kvDim: number;
  contextLength: number;
  kvCache: KvCacheType;
}

export interface Slots {
  slots: number;
  kvBytesPerRequest: number;
  /** Why this many, for the log and the status. */
  reason: string;
}

/** Bytes of one request's KV cache over the whole model at its full context. */
export function kvBytesPerRequest(i: Pick<SlotInput, 'numLayers' | 'kvDim' | 'contextLength' | 'kvCache'>): number {
  return i.numLayers * i.contextLength * 2 * kvRowBytes(i.kvCache, i.kvDim);
}

/**
 * How many requests this node runs at once (its slots): as many full-context KV caches as fit in 90% of the memory
 * left after the weights, between 1 and MAX_DEFAULT_SLOTS. A pure function of the node's figures.
 */
export function defaultSlots(i: SlotInput): Slots {
  const kv = kvBytesPerRequest(i);
  const free = Math.max(0, i.memoryBytes - i.weightBytes) * 0.9;
  const fit = Math.floor(free / kv);
  const slots = Math.max(1, Math.min(MAX_DEFAULT_SLOTS, fit));
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const reason =
    fit < 1
      ? `1: not even one full-context KV cache (${mib(kv)}) fits beside the weights; long requests may fail`
      : `${slots}: ${fit} KV caches of ${mib(kv)} (context ${i.contextLength}, ${i.kvCache}) fit in ${mib(free)}${fit > MAX_DEFAULT_SLOTS ? `, capped at ${MAX_DEFAULT_SLOTS}` : ''}`;
  return { slots, kvBytesPerRequest: kv, reason };
}
