import type { ComputeBackend } from '../engine/compute-backend.js';
import type { ForwardShard } from '../engine/forward-shard.js';
import type { LayerRange } from '../engine/layer-range.js';
import type { ModelFile } from '../model/model-file.js';
import type { ShardLora } from '../engine/lora-weights.js';
import { LoraSliceError } from './lora-slices.js';

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

  /** A loaded range's key: with a LoRA adapter's id when its layers apply one (requests name the adapter they need). */
  static key(range: LayerRange, lora?: string): string {
    return `${range.startLayer}-${range.endLayer}${lora === undefined ? '' : `+lora:${lora}`}`;
  }

  /**
   * The shard for `range`, loading it (reading only its tensors) if needed. With `lora` (an adapter's id), only the
   * layers a control load put here with that adapter: they are never loaded without it (no silent base outputs).
   */
  async get(range: LayerRange, inUse: ReadonlySet<string> = new Set(), lora?: string): Promise<ForwardShard> {
    if (lora !== undefined && !this.entries.has(ShardStore.key(range, lora))) {
      throw new LoraSliceError(`layers [${range.startLayer}, ${range.endLayer}) with LoRA adapter ${lora} are not loaded on this node (its load failed or never came)`);
    }
    return this.hold(ShardStore.key(range, lora), range, inUse, () => this.compute.loadShard(this.model, range));
  }

  /** The shard for `range` with the adapter `id`, its slice fetched by `slice()` (undefined: none on these layers) when it is not loaded yet. */
  async load(range: LayerRange, inUse: ReadonlySet<string>, id: string, slice: () => Promise<ShardLora | undefined>): Promise<ForwardShard> {
    return this.hold(ShardStore.key(range, id), range, inUse, async () => this.compute.loadShard(this.model, range, await slice()));
  }

  private async hold(key: string, range: LayerRange, inUse: ReadonlySet<string>, load: () => Promise<ForwardShard>): Promise<ForwardShard> {
    let entry = this.entries.get(key);
    if (!entry) {
      this.evict(inUse, key);
      const loading = load().then(warmed);
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
