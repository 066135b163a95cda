// Q4_1 (ggml block_q4_1): blocks of 32 values, 20 bytes: f16 d, f16 m, u8 qs[16];
//   x[j] = d·(qs[j] & 15) + m, x[j + 16] = d·(qs[j] >> 4) + m   (j < 16).
// Activations: Q8_1, or Q8_1S in the relaxed build (as ggml's vec_dot_q4_1_q8_1): W·x = d·xd·Σq·a + m·s, s = xd·Σa from the activation block.
import { halfToF32 } from './half-scale';
import { laneOrder } from '../simd';
import { nibHi, nibLo } from './int-dot';
import { matmulQ8_1Act } from './q8_1-act-rows';

export const Q4_1_BLOCK_BYTES: usize = 20;

export function dequantQ4_1(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q4_1_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const m = halfToF32(load<u16>(p, 2));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 4 + j);
      store<f32>(o + (<usize>j << 2), <f32>(q & 15) * d + m);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>(q >> 4) * d + m);
    }
  }
}

/** Q4_1's layout (q8_1-act-rows.ts): qs at 4, put in laneOrder before the nibbles are taken (relaxed build). */
@final @unmanaged class Q41Layout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q4_1_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline ordered(): bool { return true; }
  // @ts-ignore: decorator
  @inline bits(p: usize): v128 { return ASC_FEATURE_RELAXED_SIMD ? laneOrder(v128.load(p, 4)) : v128.load(p, 4); }
  // @ts-ignore: decorator
  @inline lo(v: v128, p: usize): v128 { return nibLo(v); }
  // @ts-ignore: decorator
  @inline hi(v: v128, p: usize): v128 { return nibHi(v); }
}

export function matmulQ4_1(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  matmulQ8_1Act<Q41Layout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}
