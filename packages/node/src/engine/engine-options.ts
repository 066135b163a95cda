import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { ComputeBackend } from './compute-backend.js';
import { kernelBackend } from './kernel-backend.js';
import { KV_CACHE_TYPES, type KvCacheType } from './kv-cache.js';

/** Which implementation of the forward pass computes: our kernels (default) or tfjs (F32/F16/BF16 files only). */
export type EngineBackend = 'kernels' | 'tfjs';
export const ENGINE_BACKENDS: readonly EngineBackend[] = ['kernels', 'tfjs'];

/** How this device computes: the choices `--backend`, `--threads` and `--kv-cache` expose. */
export interface EngineOptions {
  /** What computes the layers (default kernels). */
  backend?: EngineBackend;
  /** Threads that compute (default: the device's cores). */
  threads?: number;
  /** KV cache storage (default f16, as llama.cpp; q8_0 on request; tfjs keeps f32). */
  kvCache?: KvCacheType;
}

export function parseKvCacheType(s: string): KvCacheType {
  if (!(KV_CACHE_TYPES as readonly string[]).includes(s)) throw new RangeError(`the KV cache type must be one of ${KV_CACHE_TYPES.join(', ')} (got "${s}")`);
  return s as KvCacheType;
}

export function parseEngineBackend(s: string): EngineBackend {
  if (!(ENGINE_BACKENDS as readonly string[]).includes(s)) throw new RangeError(`the backend must be one of ${ENGINE_BACKENDS.join(', ')} (got "${s}")`);
  return s as EngineBackend;
}

/** Throws a RangeError for options that contradict each other. */
export function checkEngineOptions(opts: EngineOptions): void {
  if (opts.backend === 'tfjs' && opts.kvCache !== undefined && opts.kvCache !== 'f32') {
    throw new RangeError(`the tfjs backend keeps its KV cache in F32: --kv-cache ${opts.kvCache} applies to the kernels backend only`);
  }
}

/** The kernels for this process, with the requested threads. */
export function startKernels(opts: EngineOptions): Promise<KernelRuntime> {
  return createKernelRuntime(opts.threads === undefined ? {} : { threads: opts.threads });
}

/**
 * The backend the options ask for, started for this process (closed with it). tfjs is imported only here, when asked
 * for: it stays out of the browser bundle and costs nothing to a node on the kernels.
 */
export async function startComputeBackend(opts: EngineOptions): Promise<ComputeBackend> {
  checkEngineOptions(opts);
  if (opts.backend === 'tfjs') {
    const { startTfjsBackend } = await import('./tfjs-backend.js');
    return startTfjsBackend(opts);
  }
  return kernelBackend(await startKernels(opts), { ownsRuntime: true, ...(opts.kvCache ? { kvCache: opts.kvCache } : {}) });
}
