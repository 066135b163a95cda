import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { ShardLora } from '../../packages/node/src/engine/lora-weights.js';
import { QuantShard } from '../../packages/node/src/engine/quant-shard.js';
import { loadShardWeights } from '../../packages/node/src/engine/shard-weights.js';
import type { KvCacheType } from '../../packages/node/src/engine/kv-cache.js';
import type { ModelFile } from '../../packages/node/src/model/model-file.js';
import { openModel } from '../../packages/node/src/model/open-model.js';
import { loadLlamaCppModel, type LlamaCppModel } from './llama-cpp.js';

export const STORIES = join(import.meta.dirname, '..', '..', 'packages', 'node', 'models', 'stories260K.gguf');

/** stories260K in our engine (one thread) and in llama.cpp, and a scratch folder: what an adapter comparison needs. */
export interface StoriesBesideLlamaCpp {
  dir: string;
  runtime: KernelRuntime;
  model: ModelFile;
  llama: LlamaCppModel;
  /** The whole model as one shard of our engine, with the adapter if given. */
  shard(lora?: ShardLora, kv?: KvCacheType): Promise<QuantShard>;
}

/** Opens both engines before the file's tests and closes them after (the folder named with `prefix`, then removed). */
export function useStoriesBesideLlamaCpp(prefix: string): StoriesBesideLlamaCpp {
  const s = {
    async shard(lora?: ShardLora, kv?: KvCacheType) {
      return new QuantShard(await loadShardWeights(s.model, { startLayer: 0, endLayer: s.model.config.numLayers }, s.runtime, lora), s.runtime, s.model.ropeLayout, kv);
    },
  } as StoriesBesideLlamaCpp;
  beforeAll(async () => {
    s.dir = await mkdtemp(join(tmpdir(), prefix));
    s.runtime = await createKernelRuntime({ threads: 1 });
    s.model = await openModel(STORIES);
    s.llama = await loadLlamaCppModel(STORIES);
  });
  afterAll(async () => {
    await s.llama?.close();
    await s.model?.close();
    await s.runtime?.close();
    if (s.dir) await rm(s.dir, { recursive: true, force: true });
  });
  return s;
}
