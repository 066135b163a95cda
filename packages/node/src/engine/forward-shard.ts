import type { ModelConfig } from '../model/model-config.js';
import type { LayerRange } from './layer-range.js';

/** What enters a shard: token ids on the first stage, hidden states ([n, hidden], row-major) on the others. */
export type ShardInput = { kind: 'tokens'; tokens: ArrayLike<number> } | { kind: 'hidden'; hidden: Float32Array; n: number };

/** What leaves it: hidden states for the next stage, or logits on the last stage. */
export type ShardOutput = { kind: 'hidden'; hidden: Float32Array; n: number } | { kind: 'logits'; logits: Float32Array; rows: number };

/** One request's place in a batch. */
export interface BatchItem {
  input: ShardInput;
  cache: ShardKvCache;
  /**
   * On the last stage: logits for the last new position (default), every new position, none (a prompt slice), or
   * `normed`: no logits but every new position's hidden state after the final norm (what embeddings pool).
   */
  logits?: LogitsWanted;
}

export type LogitsWanted = 'last' | 'all' | 'none' | 'normed';

/** The attention cache of one request on one shard. */
export interface ShardKvCache {
  /** Positions stored so far. */
  length: number;
  /** The most positions it may hold. */
  readonly capacity: number;
  /** Bytes it holds. */
  bytes(): number;
  /**
   * Makes its first `positions` positions a copy of `from`'s (a cache of the same shard): a prompt computed once for
   * several sequences. Its length becomes `positions`.
   */
  copyPrefix(from: ShardKvCache, positions: number): void;
  /**
   * Forgets every position from `length` on (drafted rows a verification pass rejected): the next pass writes over
   * them. `length` may not exceed the positions stored; refused while a pass uses the cache.
   */
  truncate(length: number): void;
  /** Frees what it holds; safe to call twice. The cache cannot be used afterwards. */
  clear(): void;
  /**
   * Positions as plain bytes, for the prefix cache (prefix-cache.ts): a cache without these takes no part in it.
   * `readRows` copies positions [start, start + count); `writeRows` appends such a copy at `start` = its length.
   */
  readRows?(start: number, count: number): Uint8Array;
  writeRows?(start: number, count: number, rows: Uint8Array): void;
}

/**
 * A contiguous range of a transformer's layers, ready to run: the single-device engine and every pipeline stage
 * use this surface, whatever computes it.
 */
export interface ForwardShard {
  readonly config: ModelConfig;
  readonly range: LayerRange;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  /** Bytes of weights this shard holds. */
  readonly weightBytes: number;
  /** A fresh KV cache for one request, limited to `contextLength` positions. */
  createCache(contextLength?: number): ShardKvCache;
  /**
   * Throws the error `forwardBatch` would for this input on this cache (a foreign cache, the context limit, tokens
   * outside the vocabulary, the wrong shape), without running anything: a batch of several requests then fails only
   * for a compute failure, never for one request's bad input.
   */
  checkInput(input: ShardInput, cache: ShardKvCache): void;
  /**
   * Runs n new positions (continuing at cache.length) through the layers and appends them to the cache. The last
   * stage returns logits for the last position only, or for every position with `allLogits`.
   */
  forward(input: ShardInput, cache: ShardKvCache, opts?: { allLogits?: boolean }): Promise<ShardOutput>;
  /**
   * Several requests' new positions in one pass (each weight read once for all their rows); each result is the same
   * as `forward` alone would give. Inputs are checked first; a failure part-way frees every cache of the batch.
   *
   * Asynchronous so that the node keeps working while it computes: a pass lets the event loop turn every few
   * milliseconds (compute-slices.ts). Calls on one shard run one after another; a cache cleared or a shard disposed
   * during a pass is freed when the pass ends.
   */
  forwardBatch(items: readonly BatchItem[]): Promise<ShardOutput[]>;
  /** Frees the weights (once a pass running now has ended). */
  dispose(): void;
}

/**
 * What every shard checks before running anything (its `checkInput` adds that the cache is one of its own): at least
 * one position, within the cache's context limit, token ids in the vocabulary on the first stage, hidden states of
 * the right shape on the others.
 */
export function checkShardInput(shard: Pick<ForwardShard, 'config' | 'range' | 'isFirst'>, input: ShardInput, cache: ShardKvCache): void {
  const c = shard.config;
  const n = input.kind === 'tokens' ? input.tokens.length : input.n;
  if (n < 1) throw new ShardInputError('a forward pass needs at least one position');
  if (cache.length + n > cache.capacity) throw new ContextLengthError(cache.length + n, cache.capacity);
  if (input.kind === 'hidden') {
    if (shard.isFirst) throw new ShardInputError('the first stage takes token ids, not hidden states');
    if (input.hidden.length !== n * c.hiddenSize) throw new ShardInputError(`hidden states have ${input.hidden.length} values, expected ${n} × ${c.hiddenSize}`);
    return;
  }
  if (!shard.isFirst) throw new ShardInputError(`layers [${shard.range.startLayer}, ${shard.range.endLayer}) take hidden states, not token ids`);
  for (let i = 0; i < n; i++) {
    const id = input.tokens[i];
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new ShardInputError(`token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
  }
}

/** A request that would run past the context this cache may hold. */
export class ContextLengthError extends Error {
  override name = 'ContextLengthError';
  constructor(
    readonly requested: number,
    readonly limit: number,
  ) {
    super(`this request needs ${requested} positions but the context limit is ${limit} tokens`);
  }
}

export class ShardInputError extends Error {
  override name = 'ShardInputError';
}
