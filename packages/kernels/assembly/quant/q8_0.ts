// Q8_0: blocks of 32 values, 34 bytes: f16 d, 32 × i8 q; x = d·q.  Activations: Q8 (activation.ts) in both builds:
// signed weights take the widening product (int-dot.ts).
import { HALF_TABLE, halfToF32 } from './half-scale';
import { hsum, pin } from '../simd';
import { dotWide } from './int-dot';
import { rowDotQ8 } from './q8-act-rows';
import { matmulRows4 } from './row-tiles';

export const Q8_0_BLOCK_BYTES: usize = 34;

/** Dequantises n values (a multiple of 32) from blocks at src to f32 at dst. */
export function dequantQ8_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q8_0_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 32; j++) store<f32>(o + (<usize>j << 2), d * <f32>load<i8>(p + 2 + j));
  }
}

/** Q8_0's layout (q8-act-rows.ts): the 32 int8 weights at 2 and 18. */
@final @unmanaged class Q80Layout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q8_0_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline bits(p: usize): v128 { return v128.load(p, 2); }
  // @ts-ignore: decorator
  @inline lo(v: v128, p: usize): v128 { return v; }
  // @ts-ignore: decorator
  @inline hi(v: v128, p: usize): v128 { return v128.load(p, 18); }
  /**
   * The block's 32 weights at p against 32 i16 activations at a (rowDotQ8): each 8 widened by its load (vpmovsxbw
   * from memory), not loaded as 16 and widened in halves — two vector operations fewer a block.
   */
  // @ts-ignore: decorator
  @inline dot(p: usize, a: usize): v128 { return dotWide(v128.load8x8_s(p, 2), v128.load8x8_s(p, 10), v128.load8x8_s(p, 18), v128.load8x8_s(p, 26), a); }
}

/** rowDotQ8 for four activation rows, with its own scale step (below): each block is unpacked once. */
function rowQ8_0_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const qOff = <usize>nb << 2;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const w0 = v128.load8x8_s(p, 2), w1 = v128.load8x8_s(p, 10), w2 = v128.load8x8_s(p, 18), w3 = v128.load8x8_s(p, 26);
    // The block's scale times each row's: splatted once, then one broadcast load and one multiply a row (the same
    // f32 product as the scalar d · x, lane by lane).
    const d = v128.load32_splat(HALF_TABLE + (<usize>load<u16>(p) << 2));
    const a = qOff + (<usize>b << 6), xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, ad + a)), f32x4.mul(d, v128.load32_splat(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, a1 + a)), f32x4.mul(d, v128.load32_splat(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, a2 + a)), f32x4.mul(d, v128.load32_splat(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, a3 + a)), f32x4.mul(d, v128.load32_splat(a3 + xo))));
    p += Q8_0_BLOCK_BYTES;
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

/** Q8_0's row products for the tiles (row-tiles.ts). */
@final @unmanaged class Q80Rows {
  rows(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
    rowDotQ8<Q80Layout>(w, rowBytes, r0, r1, ad, nb, out);
  }
  row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
    rowQ8_0_4(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
  }
}

/**
 * out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and activation rows [0, nAct); every output is
 * reduced in the same order whatever the batch or row range (row-tiles.ts).
 */
export function matmulQ8_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  matmulRows4<Q80Rows>(w, <usize>nb * Q8_0_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
