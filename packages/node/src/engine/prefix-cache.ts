import type { ShardKvCache } from './forward-shard.js';
import { PREFIX_BLOCK_TOKENS, PrefixTrie } from './prefix-trie.js';

/** Default `--prefix-cache`: 256 MiB of KV blocks per node. */
export const DEFAULT_PREFIX_CACHE_BYTES = 256 * 1024 * 1024;

/** A stage was asked to take positions from its prefix cache that it no longer holds (evicted, or never stored). */
export class PrefixMissError extends Error {
  override name = 'PrefixMissError';
  constructor(
    readonly wanted: number,
    /** Positions of the prompt it does hold (whole blocks). */
    readonly held: number,
  ) {
    super(`this stage holds ${held} of the ${wanted} cached prompt positions asked for (evicted meanwhile): the request must be prefilled in full`);
  }
}

/** What a node's prefix cache did, for /metrics, /v1/cluster and `edge-node bench`. */
export interface PrefixCacheStats {
  budgetBytes: number;
  bytes: number;
  blocks: number;
  /** Requests that took their first positions from the cache. */
  hits: number;
  /** Requests that asked for positions the cache no longer held. */
  misses: number;
  /** Positions taken from the cache instead of computed. */
  cachedTokens: number;
  evictedBlocks: number;
}

/** What a coordinator's requests got from the stages' prefix caches. */
export interface PrefixUse {
  /** Requests opened after a cached prefix. */
  hits: number;
  /** Prompt positions taken from the stages' caches instead of computed. */
  cachedTokens: number;
  /** Requests a stage refused (it had evicted the prefix) and that were prefilled in full. */
  refusals: number;
}

/** A node's prefix cache as /metrics and /v1/cluster show it: its stage's blocks, and its own requests' use. */
export interface PrefixCacheReport {
  stage: PrefixCacheStats;
  requests: PrefixUse;
}

/**
 * A stage's prefix cache: the KV rows of fixed 16-token blocks, kept after their request ended, keyed by the token
 * prefix that produced them (a PrefixTrie per layer range), so that a request continuing a conversation — or
 * starting with the same system prompt — copies them instead of computing them again. A row of the KV cache
 * depends only on the tokens up to it (and every row is the same bits whatever the batch), so a copy is exactly
 * what the request would have computed.
 *
 * This is the shell around the trie: it copies rows between requests' caches and the blocks it keeps, as plain
 * bytes outside the arenas (so they survive a shard being freed and loaded again).
 */
export class PrefixCache {
  private readonly trie: PrefixTrie<Uint8Array>;
  /** `--prefix-cache`: the most it keeps, whatever memory the device has to spare. */
  readonly configuredBytes: number;
  private hits = 0;
  private misses = 0;
  private cachedTokens = 0;

  constructor(budgetBytes: number) {
    this.configuredBytes = budgetBytes;
    this.trie = new PrefixTrie<Uint8Array>(budgetBytes, PREFIX_BLOCK_TOKENS);
  }

  get enabled(): boolean {
    return this.trie.budgetBytes > 0;
  }

  /**
   * Keeps to what the device can spare now (its memory budget less weights and live requests' caches), never more
   * than configured: the blocks are a cache, the first memory given up, least recently used first.
   */
  fit(spareBytes: number): void {
    const next = Math.max(0, Math.min(this.configuredBytes, Math.floor(spareBytes)));
    if (next !== this.trie.budgetBytes) this.trie.resize(next);
  }

  /** Whole-block positions of `tokens` this cache holds for `namespace` (no use marked). */
  held(namespace: string, tokens: ArrayLike<number>): number {
    return this.trie.depth(namespace, tokens) * PREFIX_BLOCK_TOKENS;
  }

  /**
   * Gives `cache` (empty) the first `positions` positions of `tokens` (a multiple of the block size) from this
   * cache; throws PrefixMissError if it does not hold them all. Nothing is written then.
   */
  restore(namespace: string, tokens: ArrayLike<number>, positions: number, cache: ShardKvCache): void {
    if (positions % PREFIX_BLOCK_TOKENS !== 0 || positions > tokens.length) throw new RangeError(`a cached prefix is whole blocks of ${PREFIX_BLOCK_TOKENS} within the prompt (got ${positions} of ${tokens.length})`);
    const blocks = positions / PREFIX_BLOCK_TOKENS;
    const found = cache.writeRows && cache.length === 0 ? this.trie.match(namespace, tokens, blocks) : [];
    if (found.length < blocks) {
      this.misses++;
      throw new PrefixMissError(positions, found.length * PREFIX_BLOCK_TOKENS);
    }
    found.forEach((rows, b) => cache.writeRows!(b * PREFIX_BLOCK_TOKENS, PREFIX_BLOCK_TOKENS, rows));
    this.hits++;
    this.cachedTokens += positions;
  }

  /**
   * Keeps the whole blocks of the cache's first positions, whose tokens are `tokens` (at least the cache's length):
   * only blocks not held yet are copied. Returns the positions of `tokens` held afterwards (0 when disabled, or when
   * the budget cannot keep them).
   */
  store(namespace: string, tokens: ArrayLike<number>, cache: ShardKvCache): number {
    if (!this.enabled || !cache.readRows) return 0;
    const blocks = Math.floor(Math.min(tokens.length, cache.length) / PREFIX_BLOCK_TOKENS);
    if (blocks === 0) return 0;
    const rows = cache.readRows.bind(cache);
    this.trie.insert(namespace, tokens, (b) => {
      const data = rows(b * PREFIX_BLOCK_TOKENS, PREFIX_BLOCK_TOKENS);
      return { payload: data, bytes: data.byteLength };
    }, blocks);
    return this.held(namespace, Array.prototype.slice.call(tokens, 0, blocks * PREFIX_BLOCK_TOKENS) as number[]);
  }

  stats(): PrefixCacheStats {
    return { ...this.trie.stats(), hits: this.hits, misses: this.misses, cachedTokens: this.cachedTokens };
  }
}
