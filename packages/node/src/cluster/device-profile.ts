import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../backend/tf-backend.js';

/** What a node can do, measured at start and shared with the cluster (the partitioner plans from it). */
export interface DeviceProfile {
  /** matmul [1,k]×[k,n] GFLOP/s on the active backend (decode: one token, weight-bandwidth bound). */
  gflopsDecode: number;
  /** matmul [128,k]×[k,n] GFLOP/s (prefill: compute bound). */
  gflopsPrefill: number;
  /** Bytes/s of weights streamed by a large GEMV, in GB/s (1e9). */
  memBandwidthGBps: number;
  /** Bytes this node offers for model weights and activations. */
  memoryBytes: number;
  /** How memoryBytes was chosen, e.g. "--memory-budget" or "0.7 × free memory". */
  memorySource: string;
  backend: BackendName;
  cores: number;
  hostname: string;
  /** When it was measured (ms since epoch). */
  measuredAt: number;
}

export interface MeasureDeviceOptions {
  /** Use exactly this many bytes (from --memory-budget) instead of a fraction of free memory. */
  memoryBudgetBytes?: number;
  /** Backend to start if none is active yet (default: initBackend's choice). Never falls back silently. */
  backend?: BackendName;
  /** Wall-clock budget for the kernel measurements. Default 1000 ms, counted from the call (the whole call stays under 2 s). */
  budgetMs?: number;
}

/** Share of currently free memory a node offers by default: leaves room for the OS and other programs. */
export const DEFAULT_MEMORY_FRACTION = 0.7;

const DECODE_SHAPES: [number, number][] = [
  [576, 1536], // SmolLM2-135M MLP
  [2048, 8192], // 1-2B class MLP (64 MiB fp32 weight: also the bandwidth probe)
];
const PREFILL_ROWS = 128;

/** Median seconds per call of `fn` after one warm-up, stopping early when `deadline` passes. */
async function timeKernel(fn: () => tf.Tensor, deadline: number, maxReps: number): Promise<number> {
  const warm = fn();
  await warm.data(); // forces the kernel (and the wasm backend's one-time weight packing)
  warm.dispose();
  const times: number[] = [];
  for (let i = 0; i < maxReps; i++) {
    const t0 = performance.now();
    const out = fn();
    await out.data();
    times.push((performance.now() - t0) / 1000);
    out.dispose();
    if (performance.now() > deadline && times.length >= 1) break;
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/**
 * Measures this device in well under 2 s: GEMV and 128-row GEMM throughput at realistic transformer shapes,
 * weight-streaming bandwidth, and the memory budget. Shapes that would not fit the time budget (e.g. on the
 * slow cpu backend) are skipped and the smaller shape's figure is used.
 */
export async function measureDevice(options: MeasureDeviceOptions = {}): Promise<DeviceProfile> {
  const start = performance.now();
  const backend = await initBackend(options.backend);
  const deadline = start + (options.budgetMs ?? 1000);
  const left = () => deadline - performance.now();
  let gflopsDecode = 0;
  let gflopsPrefill = 0;
  let bandwidth = 0;

  for (const [k, n] of DECODE_SHAPES) {
    // Predict this shape's cost from the previous one (fill + warm-up + one timed call); skip what would not fit,
    // so a slow backend or a busy machine still finishes in time.
    const decodeMs = bandwidth > 0 ? ((k * n * 4) / (bandwidth * 1e9)) * 1000 : 0;
    const prefillMs = gflopsPrefill > 0 ? ((2 * PREFILL_ROWS * k * n) / (gflopsPrefill * 1e9)) * 1000 : 0;
    const fillMs = bandwidth > 0 ? ((k * n * 4) / (bandwidth * 1e9)) * 1000 * 10 : 0;
    if (fillMs + 2 * decodeMs > left() * 0.8) break;
    const w = tf.randomUniform([k, n], -0.05, 0.05, 'float32');
    const x1 = tf.randomUniform([1, k]);
    try {
      const tDecode = await timeKernel(() => tf.matMul(x1, w), performance.now() + left() / 5, 10);
      gflopsDecode = (2 * k * n) / tDecode / 1e9;
      bandwidth = (k * n * 4) / tDecode / 1e9; // the weight dominates the bytes moved by a GEMV
      if (2 * prefillMs < left() * 0.8) {
        const xp = tf.randomUniform([PREFILL_ROWS, k]);
        try {
          const tPrefill = await timeKernel(() => tf.matMul(xp, w), performance.now() + left() / 4, 3);
          gflopsPrefill = (2 * PREFILL_ROWS * k * n) / tPrefill / 1e9;
        } finally {
          xp.dispose();
        }
      }
    } finally {
      w.dispose();
      x1.dispose();
    }
  }

  const memoryBytes =
    options.memoryBudgetBytes !== undefined ? options.memoryBudgetBytes : Math.floor(DEFAULT_MEMORY_FRACTION * os.freemem());
  return {
    gflopsDecode: round(gflopsDecode),
    gflopsPrefill: round(gflopsPrefill),
    memBandwidthGBps: round(bandwidth),
    memoryBytes,
    memorySource: options.memoryBudgetBytes !== undefined ? '--memory-budget' : `${DEFAULT_MEMORY_FRACTION} × free memory`,
    backend: backend.name,
    cores: os.availableParallelism(),
    hostname: os.hostname(),
    measuredAt: Date.now(),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
