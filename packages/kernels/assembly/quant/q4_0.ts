// Q4_0 (ggml block_q4_0): blocks of 32 values, 18 bytes: f16 d, u8 qs[16];
//   x[j] = d·((qs[j] & 15) − 8), x[j + 16] = d·((qs[j] >> 4) − 8)   (j < 16).
// Activations: Q8 (activation.ts), as ggml's vec_dot_q4_0_q8_0; Q8_LS in the relaxed build (q8-lane-sum-rows.ts).
import { halfToF32 } from './half-scale';
import { nibHi, nibLo, sdot32 } from './int-dot';
import { laneOrder, MASK_08 } from '../simd';
import { matmulQ8Act } from './q8-act-rows';
import { matmulQ8Ls } from './q8-lane-sum-rows';

export const Q4_0_BLOCK_BYTES: usize = 18;

export function dequantQ4_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q4_0_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 2 + j);
      store<f32>(o + (<usize>j << 2), <f32>((q & 15) - 8) * d);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>((q >> 4) - 8) * d);
    }
  }
}

/** Q4_0's layout (q8-act-rows.ts): qs at 2, weights nibble − 8. */
@final @unmanaged class Q40Layout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q4_0_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline bits(p: usize): v128 { return v128.load(p, 2); }
  // @ts-ignore: decorator
  @inline lo(v: v128, p: usize): v128 { return i8x16.sub(nibLo(v), v128.load(MASK_08)); }
  // @ts-ignore: decorator
  @inline hi(v: v128, p: usize): v128 { return i8x16.sub(nibHi(v), v128.load(MASK_08)); }
  /** The block's 32 weights at p against 32 i16 activations at a (rowDotQ8). */
  // @ts-ignore: decorator
  @inline dot(p: usize, a: usize): v128 { const v = this.bits(p); return sdot32(this.lo(v, p), this.hi(v, p), a); }
  // The relaxed build's unsigned nibbles (q8-lane-sum-rows.ts): the bytes put in laneOrder once, nibbles after.
  // @ts-ignore: decorator
  @inline ubits(p: usize): v128 { return laneOrder(v128.load(p, 2)); }
  // @ts-ignore: decorator
  @inline ulo(v: v128, p: usize): v128 { return nibLo(v); }
  // @ts-ignore: decorator
  @inline uhi(v: v128, p: usize): v128 { return nibHi(v); }
  // @ts-ignore: decorator
  @inline offsetShift(): i32 { return 3; }
}

export function matmulQ4_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulQ8Ls<Q40Layout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulQ8Act<Q40Layout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}
