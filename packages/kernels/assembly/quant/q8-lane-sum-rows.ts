// The relaxed build's products of the 32-value types whose weights are an unsigned value minus an offset: Q4_0
// (nibble − 8) and Q5_0 (5 bits − 16), against ACT_Q8_LS activations. The unsigned values go into the relaxed dot as
// they are (its 0..127 operand), and the offset comes off once a block from the activations' lane sums:
// Σ (u − 2^k)·a = Σ u·a − 2^k·Σ a, lane by lane. Every lane holds the integer the widening product (q8-act-rows.ts,
// the SIMD128 build's) gives it, and the float steps are the same, so the two builds keep the same bits; the
// relaxed one skips widening weights and activations to i16 (two relaxed dots a block, or where V8 lowers them
// through i16 pairs two vpmaddubsw and one pmaddwd: dot-lowering.ts, int-dot.ts's udot32Of).
// A type's layout class L (its own file) adds to q8-act-rows' methods: ubits(p), the packed bytes as ulo/uhi take
// them; ulo(v, p), uhi(v, p), the unsigned values 0–15 and 16–31 in laneOrder; offsetShift(), k.
import { halfScale } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum } from '../simd';
import { udot32Of } from './int-dot';
import { FusedDot, PairedDot, pairedLowering } from './dot-lowering';

/** A block's integer lanes: the unsigned dot (in P's shape) less the offset times the activations' lane sums at sums. */
// @ts-ignore: decorator
@inline function blockInts<P>(lo: v128, hi: v128, a: usize, sums: usize, shift: i32): v128 {
  return i32x4.sub(udot32Of<P>(lo, hi, a), i32x4.shl(v128.load(sums), shift));
}

/**
 * W[r]·act for weight rows [r0, r1) (rowBytes apart from w) and one ACT_Q8_LS row, each stored at out + 4r:
 * rowDotQ8's float steps on the same integers. The rows loop here, not in the tiles (a call a row saved).
 */
function rowDotLs<L, P>(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
  const layout = changetype<L>(0);
  const sums = ad + (<usize>nb << 2);
  const aq = ad + <usize>nb * 20;
  for (let r = r0; r < r1; r++) {
    let s = f32x4.splat(0);
    let p = w + <usize>r * rowBytes;
    for (let b = 0; b < nb; b++) {
      const scale = halfScale(load<u16>(p)) * load<f32>(ad + (<usize>b << 2));
      const v = layout.ubits(p);
      const isum = blockInts<P>(layout.ulo(v, p), layout.uhi(v, p), aq + (<usize>b << 5), sums + (<usize>b << 4), layout.offsetShift());
      s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(scale)));
      p += layout.blockBytes();
    }
    store<f32>(out + (<usize>r << 2), hsum(s));
  }
}

/** rowDotLs for four activation rows (rowDotQ8x4's float steps): each block is unpacked once. */
function rowDotLsx4<L, P>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const layout = changetype<L>(0);
  const sumsOff = <usize>nb << 2;
  const qOff = <usize>nb * 20;
  const shift = layout.offsetShift();
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = layout.ubits(p);
    const lo = layout.ulo(v, p), hi = layout.uhi(v, p);
    const d = halfScale(load<u16>(p));
    const a = qOff + (<usize>b << 5), so = sumsOff + (<usize>b << 4), xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(blockInts<P>(lo, hi, ad + a, ad + so, shift)), f32x4.splat(d * load<f32>(ad + xo))));
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(blockInts<P>(lo, hi, a1 + a, a1 + so, shift)), f32x4.splat(d * load<f32>(a1 + xo))));
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(blockInts<P>(lo, hi, a2 + a, a2 + so, shift)), f32x4.splat(d * load<f32>(a2 + xo))));
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(blockInts<P>(lo, hi, a3 + a, a3 + so, shift)), f32x4.splat(d * load<f32>(a3 + xo))));
    p += layout.blockBytes();
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

/** A type's row products for the tiles (row-tiles.ts): rowDotLs and rowDotLsx4, one per type. */
@final @unmanaged class Q8LsRows<L, P> {
  rows(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
    rowDotLs<L, P>(w, rowBytes, r0, r1, ad, nb, out);
  }
  row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
    rowDotLsx4<L, P>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
  }
}

/** out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and ACT_Q8_LS rows [0, nAct) (row-tiles.ts). */
// @ts-ignore: decorator
@inline export function matmulQ8Ls<L>(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  const rowBytes = <usize>nb * changetype<L>(0).blockBytes();
  if (pairedLowering) matmulRows4<Q8LsRows<L, PairedDot>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulRows4<Q8LsRows<L, FusedDot>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
