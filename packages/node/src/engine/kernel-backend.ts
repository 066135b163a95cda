import { fillSampleBlocks, ggmlRowBytes, ggmlTypeByName, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import type { ComputeBackend, ProbeMatrix, ProductProbe } from './compute-backend.js';
import { checkKvCacheType, type KvCacheType } from './kv-cache.js';
import { QuantShard } from './quant-shard.js';
import { loadShardWeights } from './shard-weights.js';

export interface KernelBackendOptions {
  /** KV cache storage (default f16, as llama.cpp). */
  kvCache?: KvCacheType;
  /** Close the runtime with the backend (when it was started for it). */
  ownsRuntime?: boolean;
}

/** The default backend: QuantShard on our kernels, weights in the file's encoding. */
export function kernelBackend(runtime: KernelRuntime, opts: KernelBackendOptions = {}): ComputeBackend {
  return {
    name: 'kernels',
    isa: runtime.isa,
    threads: runtime.threads,
    kvCache: opts.kvCache ?? 'f16',
    summary: `kernels (wasm ${runtime.isa}, ${runtime.threads} thread${runtime.threads === 1 ? '' : 's'})`,
    // Every type openModel accepts has a kernel; only the cache type may not fit the model's heads.
    checkModel: (model) => checkKvCacheType(opts.kvCache ?? 'f16', model.config.headDim),
    loadShard: async (model, range, lora) => new QuantShard(await loadShardWeights(model, range, runtime, lora), runtime, model.ropeLayout, opts.kvCache),
    probe: (weightType) => kernelProbe(runtime, weightType),
    close: () => (opts.ownsRuntime ? runtime.close() : Promise.resolve()),
  };
}

/** Products of the kernels on weights of `weightType` (default Q8_0): the kernels differ by type. */
function kernelProbe(runtime: KernelRuntime, weightType = 'Q8_0'): ProductProbe {
  const type = ggmlTypeByName(weightType) ?? ggmlTypeByName('Q8_0')!;
  return {
    weightBytes: (rows, cols) => ggmlRowBytes(type, cols) * rows,
    async matrix(rows: number, cols: number, activationRows: number): Promise<ProbeMatrix> {
      const rowBytes = ggmlRowBytes(type, cols);
      const bytes = rowBytes * rows;
      const arena = await runtime.createArena(bytes + activationRows * cols * 8 + rows * activationRows * 4 + (1 << 20));
      const w: WeightMatrix = { arena, type, rows, cols, ptr: arena.alloc(bytes), rowBytes };
      fillSampleBlocks(type, arena.bytes(w.ptr, bytes));
      const x = arena.alloc(activationRows * cols * 4);
      const xs = arena.f32(x, activationRows * cols);
      for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i) * 0.5;
      const fmt = runtime.actFormat(type);
      const actBytes = arena.kernels.act_row_bytes(fmt, cols);
      const act = arena.alloc(activationRows * actBytes);
      arena.kernels.prepare_act(fmt, x, activationRows, cols, act);
      const out = arena.alloc(activationRows * rows * 4);
      return {
        run: (n) => runtime.matmul(w, act, actBytes, n, out, rows),
        release: () => runtime.releaseArena(arena),
      };
    },
  };
}
