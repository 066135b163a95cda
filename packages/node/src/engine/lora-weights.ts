import { ggmlTypeByName, type KernelArena, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import { LORA_PROJECTIONS, loraScale, loraTargetName, type LoraAdapter, type LoraProjection } from '../model/lora-adapter.js';

/** The adapter a shard applies and the user's scale (`--lora-scale`); each pair's own scale is scale·alpha/rank. */
export interface ShardLora {
  adapter: LoraAdapter;
  scale: number;
}

/** One adapted projection in an arena: A [rank, in] and B [out, rank] as F32 matrices, and the scale they add with. */
export interface LoraProduct {
  a: WeightMatrix;
  b: WeightMatrix;
  scale: number;
}

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
    out[p] = { a: matrix(pair.a, pair.rank, inF), b: matrix(pair.b, outF, pair.rank), scale: loraScale(lora.adapter.alpha, pair.rank, lora.scale) };
    any = true;
  }
  return any ? out : null;
}

/**
 * out[i] += scale · B·(A·x[i]) for rows i < rows: x is the projection's f32 input (before any quantisation, as
 * llama.cpp multiplies an F32 adapter), out its result (row stride outStride). Both products are the kernels' F32
 * ones, which reduce each row alone, so a row's bits do not depend on its batch; the scaled sum is rounded to f32
 * once per value, as ggml's scale then add.
 */
export function applyLora(runtime: KernelRuntime, p: LoraProduct, x: number, rows: number, out: number, outStride: number): void {
  const arena = p.a.arena;
  const rank = p.a.rows;
  const width = p.b.rows;
  const u = arena.alloc(rows * rank * 4);
  const v = arena.alloc(rows * width * 4);
  try {
    runtime.matmul(p.a, x, p.a.rowBytes, rows, u, rank);
    runtime.matmul(p.b, u, p.b.rowBytes, rows, v, width);
    // Views after the allocations: a memory that grew has a new buffer.
    const dst = arena.f32(out, (rows - 1) * outStride + width);
    const add = arena.f32(v, rows * width);
    const scale = p.scale;
    for (let i = 0; i < rows; i++) {
      const o = i * outStride;
      const a = i * width;
      for (let j = 0; j < width; j++) dst[o + j] += Math.fround(scale * add[a + j]);
    }
  } finally {
    arena.release(v);
    arena.release(u);
  }
}
