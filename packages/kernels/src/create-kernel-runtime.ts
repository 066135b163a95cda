import { SerialKernelRuntime, type KernelRuntime } from './kernel-runtime.js';
import { isNodeRuntime } from './thread-host.js';
import { ThreadedKernelRuntime, type ThreadedKernelRuntimeOptions } from './threaded-kernel-runtime.js';

export interface KernelRuntimeOptions extends Partial<ThreadedKernelRuntimeOptions> {}

/** The device's cores: os.availableParallelism() under Node, navigator.hardwareConcurrency in a browser. */
export async function defaultKernelThreads(): Promise<number> {
  if (isNodeRuntime) {
    const os = await import('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

/**
 * Threads can share a memory only where SharedArrayBuffer exists: everywhere under Node, in a browser only when the
 * page is cross-origin isolated (COOP/COEP headers).
 */
export function sharedMemoryAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  return isNodeRuntime || isolated !== false;
}

/**
 * The kernel runtime for `threads` threads (default: the device's cores). One thread, or no shared memory (a browser
 * page that is not cross-origin isolated), gives SerialKernelRuntime; its `threads` says what was granted.
 */
export async function createKernelRuntime(options: KernelRuntimeOptions = {}): Promise<KernelRuntime> {
  const threads = options.threads ?? (await defaultKernelThreads());
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`kernel threads must be a positive integer, not ${threads}`);
  if (threads === 1 || !sharedMemoryAvailable()) return SerialKernelRuntime.create(options.isa);
  return ThreadedKernelRuntime.create({ ...options, threads });
}
