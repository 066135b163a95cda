// The row products shared by the 32-value types multiplied with Q8 activations (both builds: int-dot.ts): Q4_0,
// Q5_0 and Q8_0, whose blocks are an f16 d then 32 signed weights. Each type has a layout class L in its own file
// whose methods inline: blockBytes(); bits(p), the block's packed bytes; lo(v, p) and hi(v, p), weights 0–15 and
// 16–31 as int8 from them; dot(p, a), the block against 32 activations (one row; Q8_0 widens as it loads). The
// generic functions below compile to one product per type, no run-time branch.
import { halfScale } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, pin } from '../simd';
import { dotWide } from './int-dot';

/**
 * W[r]·act for weight rows [r0, r1) (rowBytes apart from w) and one activation row, each stored at out + 4r; the
 * single definition of a result's reduction order. The rows loop here, not in the tiles (a call a row saved).
 */
export function rowDotQ8<L>(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
  const layout = changetype<L>(0);
  const aq = ad + (<usize>nb << 2);
  for (let r = r0; r < r1; r++) {
    let s = f32x4.splat(0);
    let p = w + <usize>r * rowBytes;
    for (let b = 0; b < nb; b++) {
      const scale = halfScale(load<u16>(p)) * load<f32>(ad + (<usize>b << 2));
      const isum = layout.dot(p, aq + (<usize>b << 6));
      s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(scale)));
      p += layout.blockBytes();
    }
    store<f32>(out + (<usize>r << 2), hsum(s));
  }
}

/** rowDotQ8 for four activation rows: each block is unpacked and widened once. */
function rowDotQ8x4<L>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const layout = changetype<L>(0);
  const qOff = <usize>nb << 2;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = layout.bits(p);
    const lo = layout.lo(v, p), hi = layout.hi(v, p);
    const w0 = i16x8.extend_low_i8x16_s(lo), w1 = i16x8.extend_high_i8x16_s(lo);
    const w2 = i16x8.extend_low_i8x16_s(hi), w3 = i16x8.extend_high_i8x16_s(hi);
    const d = halfScale(load<u16>(p));
    const a = qOff + (<usize>b << 6), xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, ad + a)), f32x4.splat(d * load<f32>(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, a1 + a)), f32x4.splat(d * load<f32>(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, a2 + a)), f32x4.splat(d * load<f32>(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(dotWide(w0, w1, w2, w3, a3 + a)), f32x4.splat(d * load<f32>(a3 + xo))));
    p += layout.blockBytes();
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

/** A type's row products for the tiles (row-tiles.ts): rowDotQ8 and rowDotQ8x4, plain functions, one per type. */
@final @unmanaged class Q8ActRows<L> {
  rows(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
    rowDotQ8<L>(w, rowBytes, r0, r1, ad, nb, out);
  }
  row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
    rowDotQ8x4<L>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
  }
}

/** out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and activation rows [0, nAct) (row-tiles.ts). */
// @ts-ignore: decorator
@inline export function matmulQ8Act<L>(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  matmulRows4<Q8ActRows<L>>(w, <usize>nb * changetype<L>(0).blockBytes(), nb, row0, row1, act, actBytes, nAct, out, outStride);
}
