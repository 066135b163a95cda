// The row products shared by the 32-value types with an offset m, multiplied with Q8_1 activations (Q8_1S in the
// relaxed build): Q4_1 and Q5_1, whose blocks are f16 d, f16 m, then 32 unsigned weights; W·x = d·xd·Σq·a + m·s.
// Each type has a layout class L in its own file whose methods inline: blockBytes(); bits(p), the packed bytes
// (already in laneOrder in the relaxed build when ordered() is true); lo(v, p), hi(v, p), weights 0–15 and 16–31.
import { halfScale } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, laneOrder, pin } from '../simd';
import { dot32, KACT_BYTES, udot32Of, unpackedUDot32 } from './int-dot';
import { FusedDot, PairedDot, pairedLowering } from './dot-lowering';

/** The relaxed build's weights in laneOrder: reordered here unless bits(p) already were. */
// @ts-ignore: decorator
@inline function ordered<L>(w: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD && !changetype<L>(0).ordered() ? laneOrder(w) : w;
}

/**
 * W[r]·act for weight rows [r0, r1) (rowBytes apart from w) and one activation row, each stored at out + 4r: the
 * single definition of a result's order. The rows loop here, not in the tiles (a call a row saved).
 */
function rowDotQ8_1<L, P>(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
  const layout = changetype<L>(0);
  const as = ad + (<usize>nb << 2);
  const aq = ad + (<usize>nb << 3);
  for (let r = r0; r < r1; r++) {
    let s = f32x4.splat(0);
    let t: f32 = 0; // the offsets' part, Σ m·s, in block order
    let p = w + <usize>r * rowBytes;
    for (let b = 0; b < nb; b++) {
      const v = layout.bits(p);
      const lo = layout.lo(v, p), hi = layout.hi(v, p);
      const a = aq + (<usize>b << 5) * KACT_BYTES;
      const idot = ASC_FEATURE_RELAXED_SIMD ? udot32Of<P>(ordered<L>(lo), ordered<L>(hi), a) : dot32(lo, hi, a);
      const scale = halfScale(load<u16>(p)) * load<f32>(ad + (<usize>b << 2));
      s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(idot), f32x4.splat(scale)));
      t += halfScale(load<u16>(p, 2)) * load<f32>(as + (<usize>b << 2));
      p += layout.blockBytes();
    }
    store<f32>(out + (<usize>r << 2), hsum(s) + t);
  }
}

/** rowDotQ8_1 for four activation rows: each block is unpacked and widened once. */
function rowDotQ8_1x4<L, P>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const layout = changetype<L>(0);
  const sOff = <usize>nb << 2, qOff = <usize>nb << 3;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = layout.bits(p);
    const lo = layout.lo(v, p), hi = layout.hi(v, p);
    const w0 = ASC_FEATURE_RELAXED_SIMD ? ordered<L>(lo) : i16x8.extend_low_i8x16_u(lo);
    const w1 = ASC_FEATURE_RELAXED_SIMD ? ordered<L>(hi) : i16x8.extend_high_i8x16_u(lo);
    const w2 = i16x8.extend_low_i8x16_u(hi), w3 = i16x8.extend_high_i8x16_u(hi); // unused in the relaxed build
    const d = halfScale(load<u16>(p)), m = halfScale(load<u16>(p, 2));
    const a = qOff + (<usize>b << 5) * KACT_BYTES, xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32<P>(w0, w1, w2, w3, ad + a)), f32x4.splat(d * load<f32>(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32<P>(w0, w1, w2, w3, a1 + a)), f32x4.splat(d * load<f32>(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32<P>(w0, w1, w2, w3, a2 + a)), f32x4.splat(d * load<f32>(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32<P>(w0, w1, w2, w3, a3 + a)), f32x4.splat(d * load<f32>(a3 + xo))));
    t0 += m * load<f32>(ad + sOff + xo);
    t1 += m * load<f32>(a1 + sOff + xo);
    t2 += m * load<f32>(a2 + sOff + xo);
    t3 += m * load<f32>(a3 + sOff + xo);
    p += layout.blockBytes();
  }
  store<f32>(o, hsum(s0) + t0);
  store<f32>(o1, hsum(s1) + t1);
  store<f32>(o2, hsum(s2) + t2);
  store<f32>(o3, hsum(s3) + t3);
}

/** A type's row products for the tiles (row-tiles.ts): rowDotQ8_1 and rowDotQ8_1x4, plain functions, one per type. */
@final @unmanaged class Q8_1ActRows<L, P> {
  rows(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
    rowDotQ8_1<L, P>(w, rowBytes, r0, r1, ad, nb, out);
  }
  row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
    rowDotQ8_1x4<L, P>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
  }
}

/** out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and activation rows [0, nAct) (row-tiles.ts). */
// @ts-ignore: decorator
@inline export function matmulQ8_1Act<L>(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  const rowBytes = <usize>nb * changetype<L>(0).blockBytes();
  if (ASC_FEATURE_RELAXED_SIMD && pairedLowering) matmulRows4<Q8_1ActRows<L, PairedDot>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulRows4<Q8_1ActRows<L, FusedDot>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
