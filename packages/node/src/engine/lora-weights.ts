import { ggmlTypeByName, type KernelArena, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../model/half-float.js';
import { LORA_PROJECTIONS, loraScale, loraTargetName, type LoraAdapter, type LoraProjection, type LoraStoredType } from '../model/lora-adapter.js';

/** The adapter a shard applies and the user's scale (`--lora-scale`); each pair's own scale is scale·alpha/rank. */
export interface ShardLora {
  adapter: LoraAdapter;
  scale: number;
}

/** One adapted projection in an arena: A [rank, in] as an F32 matrix, B transposed ([rank, out], f32), and the scale. */
export interface LoraProduct {
  a: WeightMatrix;
  /** Offset of Bᵀ in A's arena: B's columns as rows, so the kernel adds B·u over four outputs at a time. */
  bt: number;
  /** Outputs of the projection (B's rows). */
  width: number;
  scale: number;
  /** A or B stored in F16 (BF16) in the file: its input is rounded to that type first, as ggml multiplies them. */
  roundA?: HalfType;
  roundB?: HalfType;
}

type HalfType = 'F16' | 'BF16';

const f16round: (v: number) => number = (Math as { f16round?: (v: number) => number }).f16round ?? ((v) => f16ToF32(f32ToF16(v)));

/** Rounds every value to the half type and back (the rounding ggml applies to an F16/BF16 product's input). */
function roundTo(type: HalfType, values: Float32Array): void {
  if (type === 'F16') for (let i = 0; i < values.length; i++) values[i] = f16round(values[i]);
  else for (let i = 0; i < values.length; i++) values[i] = bf16ToF32(f32ToBf16(values[i]));
}

const half = (t: LoraStoredType | undefined): { type: HalfType } | null => (t === 'F16' || t === 'BF16' ? { type: t } : null);

/** A layer's adapted projections (those the adapter names). */
export type LayerLora = Partial<Record<LoraProjection, LoraProduct>>;

const F32 = ggmlTypeByName('F32')!;

/** Bytes layer l's pairs take in an arena (with the allocator's rounding). */
export function layerLoraBytes(lora: ShardLora | undefined, layer: number): number {
  let bytes = 0;
  for (const p of LORA_PROJECTIONS) {
    const pair = lora?.adapter.tensors.get(loraTargetName(layer, p));
    if (pair) bytes += (pair.a.length + pair.b.length) * 4 + 128;
  }
  return bytes;
}

/** Copies layer l's pairs into the arena beside its weights; null when the adapter does not touch the layer. */
export function placeLayerLora(arena: KernelArena, lora: ShardLora | undefined, layer: number): LayerLora | null {
  if (lora === undefined) return null;
  const out: LayerLora = {};
  let any = false;
  for (const p of LORA_PROJECTIONS) {
    const pair = lora.adapter.tensors.get(loraTargetName(layer, p));
    if (!pair) continue;
    const inF = pair.a.length / pair.rank;
    const outF = pair.b.length / pair.rank;
    const matrix = (values: Float32Array, rows: number, cols: number): WeightMatrix => {
      const ptr = arena.alloc(values.length * 4);
      arena.f32(ptr, values.length).set(values);
      return { arena, type: F32, rows, cols, ptr, rowBytes: cols * 4 };
    };
    const transposed = (values: Float32Array, rows: number, cols: number): number => {
      const ptr = arena.alloc(values.length * 4);
      const t = arena.f32(ptr, values.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = values[r * cols + c];
      return ptr;
    };
    const roundA = half(pair.aType);
    const roundB = half(pair.bType);
    out[p] = {
      a: matrix(pair.a, pair.rank, inF),
      bt: transposed(pair.b, outF, pair.rank),
      width: outF,
      scale: loraScale(lora.adapter.alpha, pair.rank, lora.scale),
      ...(roundA ? { roundA: roundA.type } : {}),
      ...(roundB ? { roundB: roundB.type } : {}),
    };
    any = true;
  }
  return any ? out : null;
}

/**
 * out[i] += scale · B·(A·x[i]) for rows i < rows: x is the projection's f32 input (before any quantisation, as
 * llama.cpp multiplies an F32 adapter), out its result (row stride outStride). A·x is the kernels' F32 product, B's
 * the lora_up kernel (scaled and added in place); each reduces a row alone, so a row's bits do not depend on its batch.
 */
export function applyLora(runtime: KernelRuntime, p: LoraProduct, x: number, rows: number, out: number, outStride: number): void {
  const arena = p.a.arena;
  const rank = p.a.rows;
  const u = arena.alloc(rows * rank * 4);
  const acc = arena.alloc(p.width * 4);
  const xr = p.roundA ? arena.alloc(rows * p.a.cols * 4) : 0;
  try {
    if (p.roundA) {
      // The rows stay as they are for the base product and the other projections: A takes a rounded copy.
      const copy = arena.f32(xr, rows * p.a.cols);
      copy.set(arena.f32(x, rows * p.a.cols));
      roundTo(p.roundA, copy);
    }
    runtime.matmul(p.a, p.roundA ? xr : x, p.a.rowBytes, rows, u, rank);
    if (p.roundB) roundTo(p.roundB, arena.f32(u, rows * rank));
    arena.kernels.lora_up(p.bt, rank, p.width, u, rows, p.scale, out, outStride, acc);
  } finally {
    if (xr) arena.release(xr);
    arena.release(acc);
    arena.release(u);
  }
}
