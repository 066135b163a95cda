import { ggmlTypeByName, MAX_ARENA_BYTES, type KernelArena, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import type { ShardWeights } from '../engine/shard-weights.js';
import { JS_GEMM, transpose, type FrozenMatrix } from './gemm.js';
import { dequantiseMatrix } from './frozen-model.js';
import type { Vec } from './vec.js';

const F32 = ggmlTypeByName('F32')!;
const Q8_0 = ggmlTypeByName('Q8_0')!;
/** The kernels' activation format of float weights: f32 rows as they are. */
const ACT_F32 = 0;
/** Room kept in each arena for a product's activations and result, and the transposing. */
const PRODUCT_ROOM_BYTES = 256 * 2 ** 20;

export class TrainingMemoryError extends Error {
  override name = 'TrainingMemoryError';
}

function transposedBytes(w: WeightMatrix): number {
  return w.rows % Q8_0.blockSize === 0 ? w.cols * (w.rows / Q8_0.blockSize) * Q8_0.typeSize : w.rows * w.cols * 4;
}

/**
 * Refuses, before any transpose is made, a shard whose arenas cannot also hold the transposes of their matrices
 * (each arena is one WebAssembly memory of at most 4 GiB), saying which and by how much.
 */
export function checkTransposesFit(weights: ShardWeights): void {
  const need = new Map<KernelArena, number>();
  const mats = [weights.head, ...weights.layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.wgate, l.wup, l.wdown])];
  for (const w of mats) if (w) need.set(w.arena, (need.get(w.arena) ?? 0) + transposedBytes(w));
  for (const [arena, bytes] of need) {
    const total = arena.usedBytes + bytes + PRODUCT_ROOM_BYTES;
    if (total > MAX_ARENA_BYTES) {
      const gib = (b: number) => (b / 2 ** 30).toFixed(2);
      throw new TrainingMemoryError(
        `training keeps a transposed copy of each matrix beside it for the backward: ${gib(bytes)} GiB more in a WebAssembly ` +
          `memory that holds ${gib(arena.usedBytes)} GiB, ${gib(total - MAX_ARENA_BYTES)} GiB beyond its ${gib(MAX_ARENA_BYTES)} GiB`,
      );
    }
  }
}

/** out = x · Mᵀ on the kernels, M in its arena, x quantised per block first when M's type asks (as the engine does). */
function product(runtime: KernelRuntime, m: WeightMatrix, x: Float32Array, n: number): Float32Array {
  const arena = m.arena;
  const k = arena.kernels;
  const fmt = runtime.actFormat(m.type);
  const xPtr = arena.alloc(n * m.cols * 4);
  const actBytes = fmt === ACT_F32 ? m.cols * 4 : k.act_row_bytes(fmt, m.cols);
  const actPtr = fmt === ACT_F32 ? xPtr : arena.alloc(n * actBytes);
  const outPtr = arena.alloc(n * m.rows * 4);
  try {
    arena.f32(xPtr, n * m.cols).set(x.subarray(0, n * m.cols));
    if (fmt !== ACT_F32) k.prepare_act(fmt, xPtr, n, m.cols, actPtr);
    runtime.matmul(m, actPtr, actBytes, n, outPtr, m.rows);
    return arena.f32(outPtr, n * m.rows).slice();
  } finally {
    arena.release(outPtr);
    if (actPtr !== xPtr) arena.release(actPtr);
    arena.release(xPtr);
  }
}

/**
 * Wᵀ beside W in its arena: as Q8_0 blocks when each of its rows (W's columns… of length W.rows) is a whole number of
 * 32-value blocks, else as f32.
 */
function transposed(w: WeightMatrix, values: Float32Array): WeightMatrix {
  const arena = w.arena;
  const t = transpose(values, w.rows, w.cols) as Float32Array;
  if (w.rows % Q8_0.blockSize !== 0) {
    const ptr = arena.alloc(t.length * 4);
    arena.f32(ptr, t.length).set(t);
    return { arena, type: F32, rows: w.cols, cols: w.rows, ptr, rowBytes: w.rows * 4 };
  }
  const rowBytes = (w.rows / Q8_0.blockSize) * Q8_0.typeSize;
  const ptr = arena.alloc(w.cols * rowBytes);
  const src = arena.alloc(w.rows * 4);
  try {
    for (let r = 0; r < w.cols; r++) {
      arena.f32(src, w.rows).set(t.subarray(r * w.rows, (r + 1) * w.rows));
      arena.kernels.quantize_q8_0(src, ptr + r * rowBytes, w.rows);
    }
  } finally {
    arena.release(src);
  }
  return { arena, type: Q8_0, rows: w.cols, cols: w.rows, ptr, rowBytes };
}

/**
 * A frozen matrix multiplied as the engine multiplies it: forward on the file's own blocks with the activations
 * quantised per block (the engine's arithmetic, at its speed), and the input gradient through a Q8_0 copy of Wᵀ with
 * the gradient rows quantised the same way (~1 byte per weight more, against 8 for the f32 twin). Its gradient is the
 * straight-through one: the quantisation is treated as the identity. Float64 inputs take the exact loops.
 */
export function quantisedFrozen(runtime: KernelRuntime, w: WeightMatrix): FrozenMatrix {
  const t = transposed(w, dequantiseMatrix(w));
  const exact = () => JS_GEMM.frozen(dequantiseMatrix(w), w.rows, w.cols);
  return {
    rows: w.rows,
    cols: w.cols,
    forward: (x: Vec, n: number) => (x instanceof Float32Array ? product(runtime, w, x, n) : exact().forward(x, n)),
    backward: (dy: Vec, n: number) => (dy instanceof Float32Array ? product(runtime, t, dy, n) : exact().backward(dy, n)),
    values: () => dequantiseMatrix(w),
  };
}
