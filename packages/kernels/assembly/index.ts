// The kernels' exported surface. Types are ggml's type ids (as in GGUF); each quantisation type lives in one file
// under quant/ that defines its block, its dequantisation and its product with prepared activations.
import { ACT_F32, ACT_Q8, actRowBytes, quantizeQ8 } from './activation';
import { FLOAT_BF16, FLOAT_F16, FLOAT_F32, dequantFloat, matmulFloat } from './quant/float';
import { dequantQ8_0, matmulQ8_0 } from './quant/q8_0';

const Q8_0: i32 = 8;

/** Activation format a weight type multiplies with; -1 for an unsupported type. */
export function act_format(type: i32): i32 {
  if (type == FLOAT_F32 || type == FLOAT_F16 || type == FLOAT_BF16) return ACT_F32;
  if (type == Q8_0) return ACT_Q8;
  return -1;
}

export function act_row_bytes(fmt: i32, cols: i32): i32 {
  return actRowBytes(fmt, cols);
}

/** Prepares `rows` f32 rows at x in format fmt at dst (ACT_F32 needs no preparation: pass x itself to matmul). */
export function prepare_act(fmt: i32, x: usize, rows: i32, cols: i32, dst: usize): void {
  if (fmt == ACT_Q8) quantizeQ8(x, rows, cols, dst);
}

/** Dequantises n values of a tensor of `type` at src to f32 at dst (n a multiple of the block size). */
export function dequant(type: i32, src: usize, dst: usize, n: i32): void {
  if (type == Q8_0) dequantQ8_0(src, dst, n);
  else if (type == FLOAT_F32 || type == FLOAT_F16 || type == FLOAT_BF16) dequantFloat(type, src, dst, n);
  else unreachable();
}

/**
 * out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) of a [rows, cols] matrix of `type` at w, and
 * nAct prepared activation rows of actBytes each. A row's result is the same whatever row0, row1 and nAct are.
 */
export function matmul(type: i32, w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  if (type == Q8_0) matmulQ8_0(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
  else if (type == FLOAT_F32 || type == FLOAT_F16 || type == FLOAT_BF16) matmulFloat(type, w, cols, row0, row1, act, nAct, out, outStride);
  else unreachable();
}

/** First byte after the kernels' static data: the host's allocations start at or above it. */
export function heap_base(): usize {
  return __heap_base;
}

// Transformer ops (assembly/ops): exported under the names the host calls.
export { rmsNorm as rms_norm } from './ops/norm';
export { rope } from './ops/rope';
export { attention } from './ops/attention';
export { addInPlace as add_in_place, addBias as add_bias, swiglu, toF16 as to_f16 } from './ops/elementwise';
