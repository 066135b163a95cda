// Q5_K (ggml block_q5_K): super-blocks of 256 values, 176 bytes: f16 d, f16 dmin, u8 scales[12], u8 qh[32],
// u8 qs[128]. Eight sub-blocks of 32 with 6-bit scale sc and minimum m (k-scales.ts), as Q4_K; sub-block 2k takes
// the low nibbles of qs[32k..32k+31] plus bit 2k of qh[l] as its fifth bit, 2k+1 the high nibbles plus bit 2k+1:
//   x = d·sc·q − dmin·m, q in 0..31. Its product is Q4_K's with the fifth bits (k4-family.ts).
import { dequantK4, matmulK4 } from './k4-family';

export const Q5_K_BLOCK_BYTES: usize = 176;

/** Q5_K's layout: qh at 16, qs at 48 (k4-family.ts). */
@final @unmanaged class Q5KLayout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q5_K_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline qsAt(): usize { return 48; }
  // @ts-ignore: decorator
  @inline hasFifth(): bool { return true; }
}

export function dequantQ5_K(src: usize, dst: usize, n: i32): void {
  dequantK4<Q5KLayout>(src, dst, n);
}

export function matmulQ5_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  matmulK4<Q5KLayout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}
