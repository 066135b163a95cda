// Q5_1 (ggml block_q5_1): blocks of 32 values, 24 bytes: f16 d, f16 m, u8 qh[4] (a little-endian u32 of fifth
// bits), u8 qs[16];  x[j] = d·((qs[j] & 15) | bit j of qh << 4) + m, x[j + 16] = d·((qs[j] >> 4) | bit j+16 << 4) + m.
// Activations: Q8_1, or Q8_1S in the relaxed build (as ggml's vec_dot_q5_1_q8_1): W·x = d·xd·Σq·a + m·s.
import { halfToF32 } from './half-scale';
import { fifthBits16 } from './fifth-bits';
import { nibHi, nibLo } from './int-dot';
import { matmulQ8_1Act } from './q8_1-act-rows';

export const Q5_1_BLOCK_BYTES: usize = 24;

export function dequantQ5_1(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q5_1_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const m = halfToF32(load<u16>(p, 2));
    const qh = load<u32>(p, 4);
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 8 + j);
      const x0 = (q & 15) | (((qh >> j) & 1) << 4);
      const x1 = (q >> 4) | (((qh >> (j + 16)) & 1) << 4);
      store<f32>(o + (<usize>j << 2), <f32>x0 * d + m);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>x1 * d + m);
    }
  }
}

/** Q5_1's layout (q8_1-act-rows.ts): qh at 4, qs at 8; fifth-bits.ts gives (q − 16) bytes, + 16 makes them q. */
@final @unmanaged class Q51Layout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q5_1_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline ordered(): bool { return false; }
  // @ts-ignore: decorator
  @inline bits(p: usize): v128 { return v128.load(p, 8); }
  // @ts-ignore: decorator
  @inline lo(v: v128, p: usize): v128 { return i8x16.add(v128.or(nibLo(v), fifthBits16(p + 4)), i8x16.splat(0x10)); }
  // @ts-ignore: decorator
  @inline hi(v: v128, p: usize): v128 { return i8x16.add(v128.or(nibHi(v), fifthBits16(p + 6)), i8x16.splat(0x10)); }
}

export function matmulQ5_1(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  matmulQ8_1Act<Q51Layout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}
