import type { RangeKernel } from './range-kernel.js';
/** The functions assembly/index.ts exports; pointers are byte offsets into the arena's memory. */
export interface KernelExports {
  act_format(type: number): number;
  /** Bytes of one block of a type as the kernels define it (0: a type they do not know). */
  block_bytes(type: number): number;
  act_row_bytes(fmt: number, cols: number): number;
  prepare_act(fmt: number, x: number, rows: number, cols: number, dst: number): void;
  /** prepare_act over a range of x's rows (threads share a prompt's rows). */
  prepare_act_rows: RangeKernel<[fmt: number, x: number, cols: number, dst: number]>;
  dequant(type: number, src: number, dst: number, n: number): void;
  matmul(type: number, w: number, cols: number, row0: number, row1: number, act: number, actBytes: number, nAct: number, out: number, outStride: number): void;
  heap_base(): number;
  /** 1 where the relaxed build found V8 lowering its dot product through vpmaddubsw pairs (assembly/quant/dot-lowering.ts). */
  paired_lowering(): number;
  /** Chooses the relaxed K-quant products' shape (1 paired, 0 one-step): both exact anywhere, so tests compare them. */
  set_paired_lowering(on: number): void;
  /** Fills the lookup tables below the static data (f16 → f32); done by instantiateKernels. */
  init_tables(): void;
  // Transformer ops (assembly/ops); f32 rows unless said otherwise.
  rms_norm(x: number, w: number, out: number, rows: number, dim: number, eps: number): void;
  /** In place; table: per row headDim/2 cos then headDim/2 sin; mode 0 interleaved pairs, 1 half (NEOX). */
  rope(x: number, rowStride: number, rows: number, heads: number, headDim: number, table: number, mode: number): void;
  /** One query row over nPos cached positions (kvType 1: F16, 0: F32, 2: Q8_0 K and V rows of nKvHeads·headDim), heads [h0, h1). */
  attention: RangeKernel<[kvType: number, q: number, kCache: number, vCache: number, nPos: number, nHeads: number, nKvHeads: number, headDim: number, scale: number, out: number, scores: number]>;
  add_in_place(x: number, y: number, n: number): void;
  add_bias(x: number, stride: number, rows: number, bias: number, width: number): void;
  swiglu(gate: number, up: number, inStride: number, out: number, rows: number, n: number): void;
  /** swiglu over a range of rows. */
  swiglu_rows: RangeKernel<[gate: number, up: number, inStride: number, out: number, n: number]>;
  to_f16(src: number, dst: number, n: number): void;
  /** LoRA's B product, scaled and added: out[i·outStride + j] += scale · Σ_k u[i·rank + k]·bt[k·width + j] (Bᵀ is [rank, width]; acc: width f32 of scratch). */
  lora_up(bt: number, rank: number, width: number, u: number, rows: number, scale: number, out: number, outStride: number, acc: number): void;
  /** acc[i] = f32(acc[i] + scale·p[i]) (or f32(scale·p[i]) with set = 1) in f64 arithmetic: JavaScript's `+=` into an f32 array. */
  scaled_add(acc: number, p: number, n: number, scale: number, set: number): void;
  /** dst [cols, rows] = src [rows, cols]ᵀ, f32 (training's transposed operands). */
  transpose_f32(src: number, rows: number, cols: number, dst: number): void;
  /**
   * Training's causal attention backward for heads [h0, h1) (f32 arrays; probs: those heads' [h1 − h0, t, t]; dk, dv
   * zeroed by the caller before the first head; ds: t·t f64 and row: headDim f64 of scratch): node's
   * training/attention-grad.ts's sums and roundings, so its bits when the heads' ranges come in order.
   */
  attention_backward(
    dOut: number, q: number, k: number, v: number, probs: number,
    t: number, heads: number, kvHeads: number, headDim: number, scale: number,
    dq: number, dk: number, dv: number, ds: number, row: number, h0: number, h1: number,
  ): void;
  /** Training's attention scores before the softmax, heads [h0, h1): [h1 − h0, t, t] f64 (j ≤ i), q·k in order, times scale. */
  attention_scores(q: number, k: number, t: number, heads: number, kvHeads: number, headDim: number, scale: number, scores: number, h0: number, h1: number): void;
  /**
   * Training's causal softmax of h heads' scores [h, t, t] (f64, j ≤ i; e^(s − max) left in their place) → probs [h,
   * t, t] (f32, 0 for j > i), with exp-f64.ts's exponential.
   */
  attention_softmax(scores: number, probs: number, t: number, h: number): void;
  /** Training's SwiGLU forward: out = f32((g / den) · u), den = 1 + e^−g (f64), for n f32 values of g and u. */
  swiglu_train(g: number, u: number, out: number, den: number, n: number): void;
  /** Training's cross-entropy row: d[j] = f32(e^(d[j] − max)) for n f32 values; returns the f64 exponentials' sum, in order. */
  exp_shifted(d: number, n: number, max: number): number;
  /** e^x of n f64 values (exp-f64.ts) from src into dst. */
  exp_f64(src: number, dst: number, n: number): void;
  /** Training's attention output after the softmax, heads [h0, h1): P [h1 − h0, t, t] (f32) · V, f64 sums in j order (acc: headDim f64). */
  attention_values(probs: number, v: number, t: number, heads: number, kvHeads: number, headDim: number, out: number, acc: number, h0: number, h1: number): void;
  /** n f32 values (a multiple of 32) → n/32 ggml Q8_0 blocks of 34 bytes (a row of the Q8_0 KV cache). */
  quantize_q8_0(src: number, dst: number, n: number): void;
}

export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory,
      abort: () => {
        throw new Error('kernel abort');
      },
    },
  });
  const kernels = instance.exports as unknown as KernelExports;
  kernels.init_tables();
  return kernels;
}
