import type { ComputeBackend } from '../engine/compute-backend.js';
import type { ForwardShard } from '../engine/forward-shard.js';
import type { LayerRange } from '../engine/layer-range.js';
import type { ModelFile } from '../model/model-file.js';

/**
 * The shard after one pass of one row on a throwaway cache. A shard's first pass is slow (≈0.5 s for 8 layers of a
 * 300M model, against 10–20 ms after: its memory is touched for the first time); run while it loads, that cost is
 * not paid by the first request moved to it, at the switch.
 */
async function warmed(shard: ForwardShard): Promise<ForwardShard> {
  const cache = shard.createCache(1);
  try {
    await shard.forward(shard.isFirst ? { kind: 'tokens', tokens: [0] } : { kind: 'hidden', hidden: new Float32Array(shard.config.hiddenSize), n: 1 }, cache);
  } finally {
    cache.clear();
  }
  return shard;
}

interface Entry {
  range: LayerRange;
  loading: Promise<ForwardShard>;
  lastUsed: number;
  /** Callers of get() still waiting for it: a shard is never freed under them. */
  waiters: number;
}

/**
 * The layer ranges this node has loaded from its model file. A node normally holds one range (its stage); during a
 * re-plan it may briefly hold the old and the new one, so at most `maxShards` are kept and the least recently used
 * range that no request is using is freed first.
 */
export class ShardStore {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly model: ModelFile,
    private readonly compute: ComputeBackend,
    private readonly maxShards = 2,
  ) {}

  static key(range: LayerRange): string {
    return `${range.startLayer}-${range.endLayer}`;
  }

  /** The shard for `range`, loading it (reading only its tensors) if needed. */
  async get(range: LayerRange, inUse: ReadonlySet<string> = new Set()): Promise<ForwardShard> {
    const key = ShardStore.key(range);
    let entry = this.entries.get(key);
    if (!entry) {
      this.evict(inUse, key);
      const loading = this.compute.loadShard(this.model, range).then(warmed);
      entry = { range, loading, lastUsed: Date.now(), waiters: 0 };
      this.entries.set(key, entry);
      loading.catch(() => this.entries.delete(key));
    }
    entry.lastUsed = Date.now();
    entry.waiters++;
    try {
      return await entry.loading;
    } finally {
      entry.waiters--;
    }
  }

  /**
   * Frees every loaded range but `keep` that no live request uses: after a re-plan the old range goes once the
   * requests on it have moved to the new one (a node that sheds layers for memory gets it back).
   */
  trim(keep: ReadonlySet<string>, inUse: ReadonlySet<string>): LayerRange[] {
    const freed: LayerRange[] = [];
    for (const [key, entry] of [...this.entries]) {
      if (keep.has(key) || inUse.has(key) || entry.waiters > 0) continue;
      this.entries.delete(key);
      freed.push(entry.range);
      void entry.loading.then((shard) => shard.dispose()).catch(() => {});
    }
    return freed;
  }

  /** Ranges loaded (or loading) now. */
  ranges(): LayerRange[] {
    return [...this.entries.values()].map((e) => e.range);
  }

  /** Bytes of weights held by loaded shards. */
  async weightBytes(): Promise<number> {
    let total = 0;
    for (const e of this.entries.values()) total += (await e.loading.catch(() => null))?.weightBytes ?? 0;
    return total;
  }

  private evict(inUse: ReadonlySet<string>, incoming: string): void {
    while (this.entries.size >= this.maxShards) {
      const victims = [...this.entries.entries()].filter(([k]) => !inUse.has(k) && k !== incoming).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      if (victims.length === 0) return;
      const [key, entry] = victims[0];
      this.entries.delete(key);
      void entry.loading.then((shard) => shard.dispose()).catch(() => {});
    }
  }

  async close(): Promise<void> {
    for (const e of this.entries.values()) {
      const loaded = await e.loading.catch(() => null);
      loaded?.dispose();
    }
    this.entries.clear();
  }
}
