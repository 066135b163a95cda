import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { KvCacheType } from './kv-cache.js';

/** How this device computes: the choices `--threads` and `--kv-cache` expose. */
export interface EngineOptions {
  /** Threads that compute (default: the device's cores). */
  threads?: number;
  /** KV cache storage (default f16, as llama.cpp). */
  kvCache?: KvCacheType;
}

export const KV_CACHE_TYPES: readonly KvCacheType[] = ['f16', 'f32'];

export function parseKvCacheType(s: string): KvCacheType {
  if (!(KV_CACHE_TYPES as readonly string[]).includes(s)) throw new RangeError(`the KV cache type must be one of ${KV_CACHE_TYPES.join(', ')} (got "${s}")`);
  return s as KvCacheType;
}

/** The kernels for this process, with the requested threads. */
export function startKernels(opts: EngineOptions): Promise<KernelRuntime> {
  return createKernelRuntime(opts.threads === undefined ? {} : { threads: opts.threads });
}
