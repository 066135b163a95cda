// Page side of scripts/bench-browser-kernels.ts: the same device measurement a browser node makes at join.
import '../../packages/browser/src/shims/node-timers.js';
import { createKernelRuntime } from '@edge-node/kernels';
import { measureDevice } from '@edge-node/node/browser';

(globalThis as unknown as { measure: () => Promise<unknown> }).measure = async () => {
  const runtime = await createKernelRuntime({ threads: 1 });
  try {
    return await measureDevice({ runtime, runtimeKind: 'browser', memoryBudgetBytes: 1 << 28 });
  } finally {
    await runtime.close();
  }
};
