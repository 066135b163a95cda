import { SerialKernelRuntime, type KernelRuntime } from './kernel-runtime.js';

export interface KernelRuntimeOptions {
  /** Threads that compute (the caller's included). Default 1 until the threaded runtime lands. */
  threads?: number;
}

/** The kernel runtime for this process. */
export async function createKernelRuntime(opts: KernelRuntimeOptions = {}): Promise<KernelRuntime> {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a whole number ≥ 1, not ${threads}`);
  return SerialKernelRuntime.create();
}
