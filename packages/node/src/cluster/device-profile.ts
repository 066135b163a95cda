import os from 'node:os';
import { ggmlRowBytes, ggmlTypeByName, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';

/** Where a node runs: a Node process, or a browser tab. */
export type NodeRuntimeKind = 'node' | 'browser';
export const NODE_RUNTIME_KINDS: readonly NodeRuntimeKind[] = ['node', 'browser'];

/** What a node can do, measured at start and shared with the cluster (the partitioner plans from it). */
export interface DeviceProfile {
  /** GFLOP/s of a one-row Q8_0 product (decode: weight-bandwidth bound), with the node's threads. */
  gflopsDecode: number;
  /** GFLOP/s of a 64-row Q8_0 product (prefill: compute bound). */
  gflopsPrefill: number;
  /** Bytes/s of weights streamed by a large one-row product, in GB/s (1e9). */
  memBandwidthGBps: number;
  /** Bytes this node offers for model weights and activations. */
  memoryBytes: number;
  /** How memoryBytes was chosen, e.g. "--memory-budget" or "0.7 × free memory". */
  memorySource: string;
  runtime: NodeRuntimeKind;
  /** The kernels' instruction set (e.g. "simd128"). */
  isa: string;
  /** Threads that compute. */
  threads: number;
  cores: number;
  hostname: string;
  /** When it was measured (ms since epoch). */
  measuredAt: number;
}

export interface MeasureDeviceOptions {
  /** The kernels the node computes with (their threads are measured). */
  runtime: KernelRuntime;
  /** The weight type to time, e.g. the one most of the model's bytes have (default Q8_0): kernels differ by type. */
  weightType?: string;
  /** Use exactly this many bytes (from --memory-budget) instead of a fraction of free memory. */
  memoryBudgetBytes?: number;
  /** Wall-clock budget for the kernel measurements. Default 1000 ms, counted from the call. */
  budgetMs?: number;
}

/** Share of currently free memory a node offers by default: leaves room for the OS and other programs. */
export const DEFAULT_MEMORY_FRACTION = 0.7;

/** Matrices [rows, cols]: a small-model MLP, then one large enough (16-36 MB) to stream from memory, not cache. */
const SHAPES: [number, number][] = [
  [1536, 768],
  [8192, 4096],
];
const PREFILL_ROWS = 64;

/**
 * Measures this device in about a second with the kernels and threads it will compute with: one-row and 64-row
 * Q8_0 products at transformer shapes, the weight-streaming bandwidth, and the memory budget. A shape that would
 * not fit the time budget is skipped and the smaller shape's figure is used.
 */
export async function measureDevice(options: MeasureDeviceOptions): Promise<DeviceProfile> {
  const { runtime } = options;
  const deadline = performance.now() + (options.budgetMs ?? 1000);
  const type = ggmlTypeByName(options.weightType ?? 'Q8_0') ?? ggmlTypeByName('Q8_0')!;
  let gflopsDecode = 0;
  let gflopsPrefill = 0;
  let bandwidth = 0;

  const [maxRows, maxCols] = SHAPES[SHAPES.length - 1];
  const arena = await runtime.createArena(ggmlRowBytes(type, maxCols) * maxRows + PREFILL_ROWS * maxCols * 8 + maxRows * PREFILL_ROWS * 4 + (1 << 20));
  try {
    for (const [rows, cols] of SHAPES) {
      const rowBytes = ggmlRowBytes(type, cols);
      const bytes = rowBytes * rows;
      // Predict this shape's cost from the previous one; skip what would not fit the budget.
      if (bandwidth > 0 && ((bytes / (bandwidth * 1e9)) * 1000 * 8) > deadline - performance.now()) break;
      const w: WeightMatrix = { arena, type: type, rows, cols, ptr: arena.alloc(bytes), rowBytes };
      fillBlocks(type.name, type.typeSize, arena.bytes(w.ptr, bytes));
      const x = arena.alloc(PREFILL_ROWS * cols * 4);
      const xs = arena.f32(x, PREFILL_ROWS * cols);
      for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i) * 0.5;
      const fmt = runtime.actFormat(type);
      const actBytes = arena.kernels.act_row_bytes(fmt, cols);
      const act = arena.alloc(PREFILL_ROWS * actBytes);
      arena.kernels.prepare_act(fmt, x, PREFILL_ROWS, cols, act);
      const out = arena.alloc(PREFILL_ROWS * rows * 4);

      const tDecode = medianSeconds(() => runtime.matmul(w, act, actBytes, 1, out, rows), deadline, 10);
      gflopsDecode = (2 * rows * cols) / tDecode / 1e9;
      bandwidth = bytes / tDecode / 1e9;
      if (performance.now() + tDecode * PREFILL_ROWS * 1000 * 3 < deadline) {
        const tPrefill = medianSeconds(() => runtime.matmul(w, act, actBytes, PREFILL_ROWS, out, rows), deadline, 3);
        gflopsPrefill = (2 * PREFILL_ROWS * rows * cols) / tPrefill / 1e9;
      }
      for (const p of [out, act, x, w.ptr]) arena.release(p);
      await new Promise((r) => setImmediate(r)); // let the node's network work between shapes
    }
  } finally {
    await runtime.releaseArena(arena);
  }
  // A device too slow to time even the small shape's prefill still has a figure: one row's rate.
  if (gflopsPrefill === 0) gflopsPrefill = gflopsDecode;

  const memoryBytes = options.memoryBudgetBytes !== undefined ? options.memoryBudgetBytes : Math.floor(DEFAULT_MEMORY_FRACTION * os.freemem());
  return {
    gflopsDecode: round(gflopsDecode),
    gflopsPrefill: round(gflopsPrefill),
    memBandwidthGBps: round(bandwidth),
    memoryBytes,
    memorySource: options.memoryBudgetBytes !== undefined ? '--memory-budget' : `${DEFAULT_MEMORY_FRACTION} × free memory`,
    runtime: 'node',
    isa: runtime.isa,
    threads: runtime.threads,
    cores: os.availableParallelism(),
    hostname: os.hostname(),
    measuredAt: Date.now(),
  };
}

/** Where each type's block keeps its f16 scales (ggml-common.h); everything else in a block is quants and sub-scales. */
const HALF_FIELDS: Readonly<Record<string, readonly number[]>> = {
  F16: [],
  Q8_0: [0],
  Q4_0: [0],
  Q5_0: [0],
  Q4_1: [0, 2],
  Q5_1: [0, 2],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q2_K: [80, 82],
  Q3_K: [108],
  Q6_K: [208],
};

/**
 * Blocks of a type with varied quants and small fixed f16 scales: no NaN, infinity or subnormal scale to send the
 * kernels down a slow path the real weights would not take. Float types get small varied values.
 */
function fillBlocks(type: string, blockBytes: number, bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 5) * 13) & 0xff;
  if (type === 'F32' || type === 'BF16' || type === 'F16') {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const step = type === 'F32' ? 4 : 2;
    for (let i = 0; i + step <= bytes.length; i += step) {
      const v = ((i % 97) - 48) / 4800;
      if (type === 'F32') view.setFloat32(i, v, true);
      else view.setUint16(i, type === 'BF16' ? new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16 : 0x2000 + (i % 64), true);
    }
    return;
  }
  const fields = HALF_FIELDS[type] ?? [];
  for (let b = 0; b + blockBytes <= bytes.length; b += blockBytes) {
    for (const f of fields) {
      bytes[b + f] = 0x00;
      bytes[b + f + 1] = 0x20; // f16 0.0078125
    }
  }
}

/** Median seconds per call of `fn` after one warm-up, stopping early when `deadline` passes. */
function medianSeconds(fn: () => void, deadline: number, maxReps: number): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < maxReps; i++) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
    if (performance.now() > deadline) break;
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
