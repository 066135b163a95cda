import os from 'node:os';
import type { KernelRuntime } from '@edge-node/kernels';
import type { ComputeBackend, ComputeBackendName } from '../engine/compute-backend.js';
import { turnEventLoop } from '../engine/compute-slices.js';
import { kernelBackend } from '../engine/kernel-backend.js';
import type { KvCacheType } from '../engine/kv-cache.js';
import { measureFixedCosts, measurePassOverheadMs } from './device-fixed-costs.js';

/** Where a node runs: a Node process, or a browser tab. */
export type NodeRuntimeKind = 'node' | 'browser';
export const NODE_RUNTIME_KINDS: readonly NodeRuntimeKind[] = ['node', 'browser'];

/** What a node can do, measured at start and shared with the cluster (the partitioner plans from it). */
export interface DeviceProfile {
  /** GFLOP/s of a one-row product (decode: weight-bandwidth bound), with the node's backend and threads. */
  gflopsDecode: number;
  /** GFLOP/s of a 64-row product (prefill: compute bound). */
  gflopsPrefill: number;
  /** Bytes/s of weights streamed by a large one-row product, in GB/s (1e9). */
  memBandwidthGBps: number;
  /**
   * How far apart the rounds of the decode measurement were: (slowest − fastest) / median, e.g. 0.2 when they
   * differed by 20 % — what a prediction from this profile can be off by at least. Absent from older peers.
   */
  decodeSpread?: number;
  /** Fixed ms of a stage's step outside its kernels (device-fixed-costs.ts); absent from older peers. */
  stepOverheadMs?: number;
  /** Fixed ms of a token at its coordinator (device-fixed-costs.ts); absent from older peers. */
  tokenOverheadMs?: number;
  /** What a pass costs more after an idle moment than back to back, whatever its layers (device-fixed-costs.ts); absent from older peers. */
  passOverheadMs?: number;
  /** Of tokenOverheadMs, the process being woken by the token (device-fixed-costs.ts); absent from older peers. */
  wakeMs?: number;
  /** Bytes this node offers for model weights and activations. */
  memoryBytes: number;
  /** How memoryBytes was chosen, e.g. "--memory-budget" or "0.7 × free memory". */
  memorySource: string;
  runtime: NodeRuntimeKind;
  /** What computes the layers (`--backend`): our kernels, or tfjs on tfjs-node or its wasm backend. */
  backend: ComputeBackendName;
  /** The backend's instruction set or library (e.g. "simd128", "native"). */
  isa: string;
  /** Threads that compute. */
  threads: number;
  /** How its KV caches store keys and values (`--kv-cache`); absent from a peer that does not say. */
  kvCache?: KvCacheType;
  cores: number;
  hostname: string;
  /** When it was measured (ms since epoch). */
  measuredAt: number;
}

export interface MeasureDeviceOptions {
  /** What the node computes with (its products are timed, with its threads). */
  compute?: ComputeBackend;
  /** Or: the kernels the node computes with (the default backend on them). */
  runtime?: KernelRuntime;
  /** The weight type to time, e.g. the one most of the model's bytes have (default Q8_0): kernels differ by type. */
  weightType?: string;
  /** Where this node runs (default 'node'; a browser tab passes 'browser'). */
  runtimeKind?: NodeRuntimeKind;
  /** Use exactly this many bytes (from --memory-budget) instead of a fraction of free memory. */
  memoryBudgetBytes?: number;
  /** Wall-clock budget for the kernel measurements. Default 1000 ms, counted from the call. */
  budgetMs?: number;
  /**
   * Runs between two timed products (default: a turn of the event loop, so a node re-measuring keeps its heartbeats
   * and HTTP going); a rejection stops the measurement with that error (the node has work to do).
   */
  between?: () => Promise<void>;
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
 * The decode product is timed in this many rounds, a turn of the event loop apart, and the median round taken: one
 * round caught behind another process's burst would otherwise set the node's figure for its whole life.
 */
const DECODE_ROUNDS = 3;
/** What the fixed costs' measurement takes of the budget (device-fixed-costs.ts takes about that). */
const FIXED_COSTS_BUDGET_MS = 150;
const FIXED_COSTS_SHARE = 0.2;
const REPS_PER_ROUND = 3;

/**
 * Measures this device in about a second with the backend and threads it will compute with: one-row and 64-row
 * products at transformer shapes (the one-row product in rounds, their median taken and their spread kept), the
 * weight-streaming bandwidth, the fixed costs of a step and a token, and the memory budget. A shape that would not
 * fit the time budget is skipped and the smaller shape's figure is used.
 */
export async function measureDevice(options: MeasureDeviceOptions): Promise<DeviceProfile> {
  const compute = options.compute ?? (options.runtime ? kernelBackend(options.runtime) : null);
  if (!compute) throw new TypeError('measureDevice needs the compute backend or the kernel runtime to time');
  // The fixed costs are measured last, in a share of the budget of their own.
  const budget = options.budgetMs ?? 1000;
  const deadline = performance.now() + budget - Math.min(FIXED_COSTS_SHARE * budget, FIXED_COSTS_BUDGET_MS);
  const probe = compute.probe(options.weightType);
  const between = options.between ?? turnEventLoop;
  let gflopsDecode = 0;
  let gflopsPrefill = 0;
  let bandwidth = 0;
  let decodeSpread = 0;
  let passOverheadMs: number | undefined;

  for (const [rows, cols] of SHAPES) {
    // Predict this shape's cost from the previous one; skip what would not fit the budget.
    if (bandwidth > 0 && (probe.weightBytes(rows, cols) / (bandwidth * 1e9)) * 1000 * 8 > deadline - performance.now()) break;
    const m = await probe.matrix(rows, cols, PREFILL_ROWS);
    try {
      const rounds: number[] = [];
      for (let r = 0; r < DECODE_ROUNDS && (r === 0 || performance.now() < deadline); r++) rounds.push(await medianSeconds(() => m.run(1), deadline, REPS_PER_ROUND, between));
      const tDecode = median(rounds);
      // One round (the budget ran out) says nothing about the spread: the smaller shape's figure stays.
      if (rounds.length > 1) decodeSpread = (Math.max(...rounds) - Math.min(...rounds)) / tDecode;
      gflopsDecode = (2 * rows * cols) / tDecode / 1e9;
      bandwidth = probe.weightBytes(rows, cols) / tDecode / 1e9;
      // On the small shape: a stage's pass is a few products of about that size.
      passOverheadMs ??= await measurePassOverheadMs(() => m.run(1), between);
      if (performance.now() + tDecode * PREFILL_ROWS * 1000 * 3 < deadline) {
        const tPrefill = await medianSeconds(() => m.run(PREFILL_ROWS), deadline, 3, between);
        gflopsPrefill = (2 * PREFILL_ROWS * rows * cols) / tPrefill / 1e9;
      }
    } finally {
      await m.release();
    }
    await between(); // let the node's network work between shapes
  }
  // A device too slow to time even the small shape's prefill still has a figure: one row's rate.
  if (gflopsPrefill === 0) gflopsPrefill = gflopsDecode;
  const fixed = await measureFixedCosts(between);

  const memoryBytes = options.memoryBudgetBytes !== undefined ? options.memoryBudgetBytes : Math.floor(DEFAULT_MEMORY_FRACTION * os.freemem());
  return {
    gflopsDecode: round(gflopsDecode),
    gflopsPrefill: round(gflopsPrefill),
    memBandwidthGBps: round(bandwidth),
    decodeSpread: round(decodeSpread),
    stepOverheadMs: fixed.stepOverheadMs,
    tokenOverheadMs: fixed.tokenOverheadMs,
    wakeMs: fixed.wakeMs,
    ...(passOverheadMs !== undefined ? { passOverheadMs } : {}),
    memoryBytes,
    memorySource: options.memoryBudgetBytes !== undefined ? '--memory-budget' : `${DEFAULT_MEMORY_FRACTION} × free memory`,
    runtime: options.runtimeKind ?? 'node',
    backend: compute.name,
    isa: compute.isa,
    threads: compute.threads,
    kvCache: compute.kvCache,
    cores: os.availableParallelism(),
    hostname: os.hostname(),
    measuredAt: Date.now(),
  };
}

/** Median seconds per call of `fn` after one warm-up, stopping early when `deadline` passes; `between` runs between calls. */
async function medianSeconds(fn: () => void, deadline: number, maxReps: number, between: () => Promise<void>): Promise<number> {
  fn();
  const times: number[] = [];
  for (let i = 0; i < maxReps; i++) {
    await between();
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
    if (performance.now() > deadline) break;
  }
  return median(times);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
