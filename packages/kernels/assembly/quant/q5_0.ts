// Q5_0 (ggml block_q5_0): blocks of 32 values, 22 bytes: f16 d, u8 qh[4] (a little-endian u32 of fifth bits),
// u8 qs[16];  x[j] = d·(((qs[j] & 15) | bit j of qh << 4) − 16), x[j + 16] = d·(((qs[j] >> 4) | bit j+16 << 4) − 16).
// Activations: Q8 (as ggml's vec_dot_q5_0_q8_0); Q8_LS in the relaxed build (q8-lane-sum-rows.ts).
import { halfToF32 } from './half-scale';
import { fifthBits16 } from './fifth-bits';
import { nibHi, nibLo, sdot32 } from './int-dot';
import { matmulQ8Act } from './q8-act-rows';
import { matmulQ8Ls } from './q8-lane-sum-rows';
import { laneOrder, MASK_10 } from '../simd';

export const Q5_0_BLOCK_BYTES: usize = 22;

export function dequantQ5_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q5_0_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const qh = load<u32>(p, 2);
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 6 + j);
      const x0 = ((q & 15) | (((qh >> j) & 1) << 4)) - 16;
      const x1 = ((q >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      store<f32>(o + (<usize>j << 2), <f32>x0 * d);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>x1 * d);
    }
  }
}

/** Q5_0's layout (q8-act-rows.ts): qh at 2, qs at 6; (nibble | bit << 4) − 16 = nibble | (bit ? 0 : 0xF0). */
@final @unmanaged class Q50Layout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q5_0_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline bits(p: usize): v128 { return v128.load(p, 6); }
  // @ts-ignore: decorator
  @inline lo(v: v128, p: usize): v128 { return v128.or(nibLo(v), fifthBits16(p + 2)); }
  // @ts-ignore: decorator
  @inline hi(v: v128, p: usize): v128 { return v128.or(nibHi(v), fifthBits16(p + 4)); }
  /** The block's 32 weights at p against 32 i16 activations at a (rowDotQ8). */
  // @ts-ignore: decorator
  @inline dot(p: usize, a: usize): v128 { const v = this.bits(p); return sdot32(this.lo(v, p), this.hi(v, p), a); }
  // The relaxed build's unsigned values (q8-lane-sum-rows.ts): the signed ones plus 16 (nibble | bit << 4), in laneOrder.
  // @ts-ignore: decorator
  @inline ubits(p: usize): v128 { return v128.load(p, 6); }
  // @ts-ignore: decorator
  @inline ulo(v: v128, p: usize): v128 { return laneOrder(i8x16.add(this.lo(v, p), v128.load(MASK_10))); }
  // @ts-ignore: decorator
  @inline uhi(v: v128, p: usize): v128 { return laneOrder(i8x16.add(this.hi(v, p), v128.load(MASK_10))); }
  // @ts-ignore: decorator
  @inline offsetShift(): i32 { return 4; }
}

export function matmulQ5_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulQ8Ls<Q50Layout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulQ8Act<Q50Layout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}
