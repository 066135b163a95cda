// @edge-node/kernels' public surface: what the runtime, its tests and the kernel benchmarks import, by name.
export { createKernelRuntime } from './create-kernel-runtime.js';
export { expF64 } from './exp-f64.js';
export { ggmlRowBytes, ggmlTypeById, ggmlTypeByName, type GgmlTypeInfo, KERNEL_TYPE_NAMES, type KernelTypeName } from './ggml-types.js';
export { KernelArena, MAX_ARENA_BYTES } from './kernel-arena.js';
export { instantiateKernels } from './kernel-exports.js';
export { chooseKernelIsa, KERNEL_ISA_ENV, KERNEL_ISAS, type KernelIsa, loadKernelModule, probeRelaxed } from './kernel-isa.js';
export { KERNEL_RELAXED_UNSHARED_WASM_URL, KERNEL_RELAXED_WASM_URL, KERNEL_UNSHARED_WASM_URL, KERNEL_WASM_URL } from './kernel-module.js';
export { type KernelRuntime, SerialKernelRuntime, UnsupportedKernelTypeError, type WeightMatrix } from './kernel-runtime.js';
export { fillSampleBlocks } from './sample-blocks.js';
export { planChunkSize } from './thread-control.js';
export { KernelThreadError, ThreadedKernelRuntime } from './threaded-kernel-runtime.js';
export { describeWasmFeatures, detectWasmFeatures } from './wasm-features.js';
