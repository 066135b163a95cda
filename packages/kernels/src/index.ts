export * from './ggml-types.js';
export * from './kernel-arena.js';
export * from './kernel-exports.js';
export * from './kernel-module.js';
export * from './kernel-runtime.js';
export type { ParallelForOptions, RangeKernel, RangeKernelArgs, RangeKernelName } from './range-kernel.js';
export * from './create-kernel-runtime.js';
export * from './threaded-kernel-runtime.js';
export { planChunkSize } from './thread-control.js';
