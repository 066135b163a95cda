// Q5_K (ggml block_q5_K): super-blocks of 256 values, 176 bytes: f16 d, f16 dmin, u8 scales[12], u8 qh[32],
// u8 qs[128]. Eight sub-blocks of 32 with 6-bit scale sc and minimum m (k-scales.ts), as Q4_K; sub-block 2k takes
// the low nibbles of qs[32k..32k+31] plus bit 2k of qh[l] as its fifth bit, 2k+1 the high nibbles plus bit 2k+1:
//   x = d·sc·q − dmin·m, q in 0..31. Its product is Q4_K's with the fifth bits (k4-family.ts).
import { halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { byteOf, minsK4, scalesK4 } from './k-scales';
import { Q5KLayout, rowDotK4, rowDotK4x4 } from './k4-family';

export const Q5_K_BLOCK_BYTES: usize = 176;

export function dequantQ5_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q5_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const dmin = halfToF32(load<u16>(p, 2));
    const sc = scalesK4(p + 4), mn = minsK4(p + 4);
    const o = dst + (<usize>b << 10);
    for (let k = 0; k < 4; k++) {
      const d1 = d * <f32>byteOf(sc, 2 * k), m1 = dmin * <f32>byteOf(mn, 2 * k);
      const d2 = d * <f32>byteOf(sc, 2 * k + 1), m2 = dmin * <f32>byteOf(mn, 2 * k + 1);
      const q = p + 48 + (<usize>k << 5);
      const y = o + (<usize>k << 8);
      for (let l = 0; l < 32; l++) {
        const v = <i32>load<u8>(q + l);
        const hb = <i32>load<u8>(p + 16 + l);
        store<f32>(y + (<usize>l << 2), d1 * <f32>((v & 15) + (((hb >> (2 * k)) & 1) << 4)) - m1);
        store<f32>(y + (<usize>(l + 32) << 2), d2 * <f32>((v >> 4) + (((hb >> (2 * k + 1)) & 1) << 4)) - m2);
      }
    }
  }
}

/**
 * Fifth bits: 0x10 in each byte of h whose bit 0 (lo) or bit 1 (hi) is set. h is shifted right by two bits a pair
 * of sub-blocks (16-bit shifts: what crosses into a byte lands above the bits read, and the mask drops it).
 */
// @ts-ignore: decorator
@inline function fifthLo(h: v128, m10: v128): v128 {
  return v128.and(i16x8.shl(h, 4), m10);
}
// @ts-ignore: decorator
@inline function fifthHi(h: v128, m10: v128): v128 {
  return v128.and(i16x8.shl(h, 3), m10);
}

function rowQ5_K(wr: usize, ad: usize, nb: i32): f32 {
  return rowDotK4<Q5KLayout>(wr, ad, nb);
}

function rowQ5_K_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  rowDotK4x4<Q5KLayout>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
}

export function matmulQ5_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  matmulRows4(rowQ5_K, rowQ5_K_4, w, <usize>nb * Q5_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
