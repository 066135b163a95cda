// The kernels' exported surface. Types are ggml's type ids (as in GGUF); each quantisation type lives in one file
// under quant/ that defines its block, its dequantisation and its product with prepared activations.
import { ACT_F32, ACT_Q8, ACT_Q8_1, ACT_Q8_1S, ACT_Q8_K, ACT_Q8_KN, ACT_Q8_KP, ACT_Q8_KS, ACT_Q8_LS, actRowBytes, quantizeQ8, quantizeQ8_1, quantizeQ8_1S, quantizeQ8K, quantizeQ8KN, quantizeQ8KP, quantizeQ8KS, quantizeQ8LS } from './activation';
import { pairedLowering } from './quant/dot-lowering';
import { FLOAT_BF16, FLOAT_F16, FLOAT_F32, dequantFloat, matmulFloat } from './quant/float';
import { Q2_K_BLOCK_BYTES, dequantQ2_K, matmulQ2_K } from './quant/q2_k';
import { Q3_K_BLOCK_BYTES, dequantQ3_K, matmulQ3_K } from './quant/q3_k';
import { Q4_0_BLOCK_BYTES, dequantQ4_0, matmulQ4_0 } from './quant/q4_0';
import { Q4_1_BLOCK_BYTES, dequantQ4_1, matmulQ4_1 } from './quant/q4_1';
import { Q4_K_BLOCK_BYTES, dequantQ4_K, matmulQ4_K } from './quant/q4_k';
import { Q5_0_BLOCK_BYTES, dequantQ5_0, matmulQ5_0 } from './quant/q5_0';
import { Q5_1_BLOCK_BYTES, dequantQ5_1, matmulQ5_1 } from './quant/q5_1';
import { Q5_K_BLOCK_BYTES, dequantQ5_K, matmulQ5_K } from './quant/q5_k';
import { Q6_K_BLOCK_BYTES, dequantQ6_K, matmulQ6_K } from './quant/q6_k';
import { Q8_0_BLOCK_BYTES, dequantQ8_0, matmulQ8_0 } from './quant/q8_0';

// ggml type ids (ggml.h enum ggml_type). Every dispatch below is one switch over them; test/kernel-type-table.test.ts
// checks each against the type table the host uses (src/ggml-types.ts), as ggml's static_asserts check its blocks.
const Q4_0: i32 = 2;
const Q4_1: i32 = 3;
const Q5_0: i32 = 6;
const Q5_1: i32 = 7;
const Q8_0: i32 = 8;
const Q2_K: i32 = 10;
const Q3_K: i32 = 11;
const Q4_K: i32 = 12;
const Q5_K: i32 = 13;
const Q6_K: i32 = 14;

/** Bytes of one block of a type as its quant/ file defines it (1 value a block for floats); 0 for other types. */
export function block_bytes(type: i32): i32 {
  switch (type) {
    case FLOAT_F32: return 4;
    case FLOAT_F16: case FLOAT_BF16: return 2;
    case Q8_0: return <i32>Q8_0_BLOCK_BYTES;
    case Q4_0: return <i32>Q4_0_BLOCK_BYTES;
    case Q5_0: return <i32>Q5_0_BLOCK_BYTES;
    case Q4_1: return <i32>Q4_1_BLOCK_BYTES;
    case Q5_1: return <i32>Q5_1_BLOCK_BYTES;
    case Q2_K: return <i32>Q2_K_BLOCK_BYTES;
    case Q3_K: return <i32>Q3_K_BLOCK_BYTES;
    case Q4_K: return <i32>Q4_K_BLOCK_BYTES;
    case Q5_K: return <i32>Q5_K_BLOCK_BYTES;
    case Q6_K: return <i32>Q6_K_BLOCK_BYTES;
    default: return 0;
  }
}

/**
 * Activation format a weight type multiplies with; -1 for an unsupported type. The relaxed build (int-dot.ts) takes
 * int8 activations for the types it has relaxed products for; the others keep the SIMD128 product and its format.
 */
export function act_format(type: i32): i32 {
  switch (type) {
    case FLOAT_F32: case FLOAT_F16: case FLOAT_BF16: return ACT_F32;
    case Q8_0: return ACT_Q8;
    case Q4_0: case Q5_0: return ASC_FEATURE_RELAXED_SIMD ? ACT_Q8_LS : ACT_Q8;
    case Q4_1: case Q5_1: return ASC_FEATURE_RELAXED_SIMD ? ACT_Q8_1S : ACT_Q8_1;
    case Q2_K: case Q3_K: return ASC_FEATURE_RELAXED_SIMD ? ACT_Q8_KS : ACT_Q8_K;
    case Q4_K: case Q5_K: return ASC_FEATURE_RELAXED_SIMD ? ACT_Q8_KP : ACT_Q8_K;
    case Q6_K: return ASC_FEATURE_RELAXED_SIMD ? ACT_Q8_KN : ACT_Q8_K;
    default: return -1;
  }
}

export function act_row_bytes(fmt: i32, cols: i32): i32 {
  return actRowBytes(fmt, cols);
}

/** Prepares `rows` f32 rows at x in format fmt at dst (ACT_F32 needs no preparation: pass x itself to matmul). */
export function prepare_act(fmt: i32, x: usize, rows: i32, cols: i32, dst: usize): void {
  switch (fmt) {
    case ACT_Q8: quantizeQ8(x, rows, cols, dst); break;
    case ACT_Q8_1: quantizeQ8_1(x, rows, cols, dst); break;
    case ACT_Q8_K: quantizeQ8K(x, rows, cols, dst); break;
    case ACT_Q8_KS: quantizeQ8KS(x, rows, cols, dst); break;
    case ACT_Q8_KN: quantizeQ8KN(x, rows, cols, dst); break;
    case ACT_Q8_KP: quantizeQ8KP(x, rows, cols, dst); break;
    case ACT_Q8_1S: quantizeQ8_1S(x, rows, cols, dst); break;
    case ACT_Q8_LS: quantizeQ8LS(x, rows, cols, dst); break;
    default: break;
  }
}

/** prepare_act for rows [r0, r1) of x: a range kernel, so that threads share a prompt's rows (each row alone). */
export function prepare_act_rows(fmt: i32, x: usize, cols: i32, dst: usize, r0: i32, r1: i32): void {
  prepare_act(fmt, x + ((<usize>r0 * <usize>cols) << 2), r1 - r0, cols, dst + <usize>r0 * <usize>actRowBytes(fmt, cols));
}

/** Dequantises n values of a tensor of `type` at src to f32 at dst (n a multiple of the block size). */
export function dequant(type: i32, src: usize, dst: usize, n: i32): void {
  switch (type) {
    case Q8_0: dequantQ8_0(src, dst, n); break;
    case Q4_0: dequantQ4_0(src, dst, n); break;
    case Q5_0: dequantQ5_0(src, dst, n); break;
    case Q4_1: dequantQ4_1(src, dst, n); break;
    case Q5_1: dequantQ5_1(src, dst, n); break;
    case Q2_K: dequantQ2_K(src, dst, n); break;
    case Q3_K: dequantQ3_K(src, dst, n); break;
    case Q4_K: dequantQ4_K(src, dst, n); break;
    case Q5_K: dequantQ5_K(src, dst, n); break;
    case Q6_K: dequantQ6_K(src, dst, n); break;
    case FLOAT_F32: case FLOAT_F16: case FLOAT_BF16: dequantFloat(type, src, dst, n); break;
    default: unreachable();
  }
}

/**
 * out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) of a [rows, cols] matrix of `type` at w, and
 * nAct prepared activation rows of actBytes each. A row's result is the same whatever row0, row1 and nAct are.
 */
export function matmul(type: i32, w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  switch (type) {
    case Q8_0: matmulQ8_0(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q4_0: matmulQ4_0(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q5_0: matmulQ5_0(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q4_1: matmulQ4_1(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q5_1: matmulQ5_1(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q2_K: matmulQ2_K(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q3_K: matmulQ3_K(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q4_K: matmulQ4_K(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q5_K: matmulQ5_K(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case Q6_K: matmulQ6_K(w, cols, row0, row1, act, actBytes, nAct, out, outStride); break;
    case FLOAT_F32: case FLOAT_F16: case FLOAT_BF16: matmulFloat(type, w, cols, row0, row1, act, nAct, out, outStride); break;
    default: unreachable();
  }
}

/** First byte after the kernels' static data: the host's allocations start at or above it. */
/** Fills the lookup tables kept below the static data; instantiateKernels calls it on every instance. */
export { initHalfTable as init_tables } from './quant/half-scale';

export function heap_base(): usize {
  return __heap_base;
}

/** 1 where the relaxed build's K-quant products take the shape for a paired (vpmaddubsw) lowering (quant/dot-lowering.ts). */
export function paired_lowering(): i32 {
  return pairedLowering ? 1 : 0;
}

export { setPairedLowering as set_paired_lowering } from './quant/dot-lowering';

// Transformer ops (assembly/ops): exported under the names the host calls.
export { rmsNorm as rms_norm } from './ops/norm';
export { rope } from './ops/rope';
export { attention } from './ops/attention';
export { quantizeQ8_0 as quantize_q8_0 } from './ops/kv-q8';
export { addInPlace as add_in_place, addBias as add_bias, swiglu, swigluRows as swiglu_rows, toF16 as to_f16 } from './ops/elementwise';
export { loraUp as lora_up } from './ops/lora';
export { transposeF32 as transpose_f32 } from './ops/transpose';
export { scaledAdd as scaled_add } from './ops/scaled-add';
export { attentionBackward as attention_backward } from './ops/attention-grad';
export { attentionScores as attention_scores, attentionSoftmax as attention_softmax, attentionValues as attention_values } from './ops/attention-train-forward';
export { swigluTrain as swiglu_train } from './ops/swiglu-train';
export { expF64Array as exp_f64 } from './ops/exp-f64';
export { expShifted as exp_shifted } from './ops/cross-entropy-exp';
