// Q4_K (ggml block_q4_K): super-blocks of 256 values, 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128].
// Eight sub-blocks of 32, each with a 6-bit scale sc and minimum m (k-scales.ts). Sub-blocks 2k and 2k+1 share
// qs[32k..32k+31]: 2k takes the low nibbles, 2k+1 the high ones;  x = d·sc·q − dmin·m.
// Its product is Q5_K's without the fifth bits (k4-family.ts).
import { dequantK4, matmulK4 } from './k4-family';

export const Q4_K_BLOCK_BYTES: usize = 144;

/** Q4_K's layout: qs at 16, no fifth bits (k4-family.ts). */
@final @unmanaged class Q4KLayout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q4_K_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline qsAt(): usize { return 16; }
  // @ts-ignore: decorator
  @inline hasFifth(): bool { return false; }
}

export function dequantQ4_K(src: usize, dst: usize, n: i32): void {
  dequantK4<Q4KLayout>(src, dst, n);
}

export function matmulQ4_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  matmulK4<Q4KLayout>(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}
