// Unquantised weights: F32, F16 and BF16 rows, multiplied with f32 activations (no activation quantisation).
import { bf16ToF32 } from '../half';
import { halfScale, halfToF32 } from './half-scale';
import { hsum } from '../simd';

export const FLOAT_F32: i32 = 0;
export const FLOAT_F16: i32 = 1;
export const FLOAT_BF16: i32 = 30;

// @ts-ignore: decorator
@inline function load4(kind: i32, p: usize): v128 {
  if (kind == FLOAT_F32) return v128.load(p);
  if (kind == FLOAT_BF16) return i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  // f16 → f32: the half sign-extended and shifted left by 13 has its exponent and mantissa in place for an f32 with a
  // 2^-112 bias and its sign in bit 31 (bits 30..28, copies of the sign, cleared); multiplying by 2^112 rebases the
  // exponent and keeps the sign — the bits of rebasing the magnitude and ORing the sign in, in four operations for
  // seven. Subnormal halves (~0.1% of typical weights) take a slow multiply on Intel, still cheaper overall than
  // half-scale.ts's exact select (measured 2x).
  const h = i32x4.shl(i32x4.extend_low_i16x8_s(v128.load64_zero(p)), 13);
  return f32x4.mul(v128.and(h, i32x4.splat(0x8fffffff)), f32x4.splat(5.192296858534828e33));
}

/** Bytes of one element. */
// @ts-ignore: decorator
@inline function elemBytes(kind: i32): usize {
  return kind == FLOAT_F32 ? 4 : 2;
}

export function dequantFloat(kind: i32, src: usize, dst: usize, n: i32): void {
  for (let j = 0; j < n; j++) {
    let v: f32;
    if (kind == FLOAT_F32) v = load<f32>(src + (<usize>j << 2));
    else if (kind == FLOAT_BF16) v = bf16ToF32(load<u16>(src + (<usize>j << 1)));
    else v = halfToF32(load<u16>(src + (<usize>j << 1)));
    store<f32>(dst + (<usize>j << 2), v);
  }
}

/** Weight rows per tile: 16 rows of 576–2048 f32 values (37–131 KiB) stay in L2 while a batch's rows pass them. */
const TILE: i32 = 16;

/**
 * out[i·outStride + r] = W[r] · x[i] for f32/f16/bf16 rows (cols a multiple of 4; a scalar tail otherwise). A batch
 * meets each weight row four activation rows at a time: the row is loaded (and widened from 16 bits) once for four,
 * and the four independent sums keep the adder busy where one chain waits on its own latency. Every output is
 * summed in the same order whether it is computed alone or in a group, so its bits do not depend on the batch.
 */
export function matmulFloat(kind: i32, w: usize, cols: i32, row0: i32, row1: i32, act: usize, nAct: i32, out: usize, outStride: i32): void {
  const rb = <usize>cols * elemBytes(kind);
  const xb = <usize>cols << 2;
  const ob = <usize>outStride << 2;
  const full = nAct & ~3;
  for (let t0 = row0; t0 < row1; t0 += TILE) {
    const t1 = min(t0 + TILE, row1);
    for (let i = 0; i < full; i += 4) {
      const x = act + <usize>i * xb, o = out + <usize>i * ob;
      let r = t0;
      // The tile's first pass reads one weight row at a time: two rows read side by side from memory (not cache) ran
      // at half the speed on the development machine. Later passes find the tile in cache and take two rows.
      if (i > 0) for (; r + 1 < t1; r += 2) rowsFloat2x4(kind, w + <usize>r * rb, rb, cols, x, xb, o + (<usize>r << 2), ob);
      for (; r < t1; r++) rowFloat4(kind, w + <usize>r * rb, cols, x, xb, o + (<usize>r << 2), ob);
    }
    for (let i = full; i < nAct; i++) {
      const x = act + <usize>i * xb, o = out + <usize>i * ob;
      let r = t0;
      if (full > 0) for (; r + 3 < t1; r += 4) rowsFloat4x1(kind, w + <usize>r * rb, rb, cols, x, o + (<usize>r << 2));
      for (; r < t1; r++) store<f32>(o + (<usize>r << 2), rowFloat(kind, w + <usize>r * rb, cols, x));
    }
  }
}

/** W's row at wr · the activation row at x. */
// @ts-ignore: decorator
@inline function rowFloat(kind: i32, wr: usize, cols: i32, x: usize): f32 {
  const eb = elemBytes(kind);
  const c4 = cols & ~3;
  let s = f32x4.splat(0);
  for (let j = 0; j < c4; j += 4) s = f32x4.add(s, f32x4.mul(load4(kind, wr + <usize>j * eb), v128.load(x + (<usize>j << 2))));
  return tailFloat(kind, wr, cols, x, hsum(s));
}

/** W's row at wr · four activation rows (at x, x + xb, …), outputs at o, o + ob, …: each as rowFloat sums it. */
// @ts-ignore: decorator
@inline function rowFloat4(kind: i32, wr: usize, cols: i32, x: usize, xb: usize, o: usize, ob: usize): void {
  const eb = elemBytes(kind);
  const c4 = cols & ~3;
  const x1 = x + xb, x2 = x1 + xb, x3 = x2 + xb;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let j = 0; j < c4; j += 4) {
    const wv = load4(kind, wr + <usize>j * eb);
    const jb = <usize>j << 2;
    s0 = f32x4.add(s0, f32x4.mul(wv, v128.load(x + jb)));
    s1 = f32x4.add(s1, f32x4.mul(wv, v128.load(x1 + jb)));
    s2 = f32x4.add(s2, f32x4.mul(wv, v128.load(x2 + jb)));
    s3 = f32x4.add(s3, f32x4.mul(wv, v128.load(x3 + jb)));
  }
  store<f32>(o, tailFloat(kind, wr, cols, x, hsum(s0)));
  store<f32>(o + ob, tailFloat(kind, wr, cols, x1, hsum(s1)));
  store<f32>(o + 2 * ob, tailFloat(kind, wr, cols, x2, hsum(s2)));
  store<f32>(o + 3 * ob, tailFloat(kind, wr, cols, x3, hsum(s3)));
}

/** Two weight rows (at wr, wr + rb) · four activation rows: eight sums, each as rowFloat sums it. */
// @ts-ignore: decorator
@inline function rowsFloat2x4(kind: i32, wr: usize, rb: usize, cols: i32, x: usize, xb: usize, o: usize, ob: usize): void {
  const eb = elemBytes(kind);
  const c4 = cols & ~3;
  const w1 = wr + rb;
  const x1 = x + xb, x2 = x1 + xb, x3 = x2 + xb;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let u0 = f32x4.splat(0), u1 = f32x4.splat(0), u2 = f32x4.splat(0), u3 = f32x4.splat(0);
  for (let j = 0; j < c4; j += 4) {
    const wa = load4(kind, wr + <usize>j * eb);
    const wb = load4(kind, w1 + <usize>j * eb);
    const jb = <usize>j << 2;
    const a0 = v128.load(x + jb), a1 = v128.load(x1 + jb), a2 = v128.load(x2 + jb), a3 = v128.load(x3 + jb);
    s0 = f32x4.add(s0, f32x4.mul(wa, a0));
    s1 = f32x4.add(s1, f32x4.mul(wa, a1));
    s2 = f32x4.add(s2, f32x4.mul(wa, a2));
    s3 = f32x4.add(s3, f32x4.mul(wa, a3));
    u0 = f32x4.add(u0, f32x4.mul(wb, a0));
    u1 = f32x4.add(u1, f32x4.mul(wb, a1));
    u2 = f32x4.add(u2, f32x4.mul(wb, a2));
    u3 = f32x4.add(u3, f32x4.mul(wb, a3));
  }
  store<f32>(o, tailFloat(kind, wr, cols, x, hsum(s0)));
  store<f32>(o + ob, tailFloat(kind, wr, cols, x1, hsum(s1)));
  store<f32>(o + 2 * ob, tailFloat(kind, wr, cols, x2, hsum(s2)));
  store<f32>(o + 3 * ob, tailFloat(kind, wr, cols, x3, hsum(s3)));
  store<f32>(o + 4, tailFloat(kind, w1, cols, x, hsum(u0)));
  store<f32>(o + ob + 4, tailFloat(kind, w1, cols, x1, hsum(u1)));
  store<f32>(o + 2 * ob + 4, tailFloat(kind, w1, cols, x2, hsum(u2)));
  store<f32>(o + 3 * ob + 4, tailFloat(kind, w1, cols, x3, hsum(u3)));
}

/** Four weight rows (at wr, wr + rb, …) · one activation row: four independent sums, each as rowFloat sums it. */
// @ts-ignore: decorator
@inline function rowsFloat4x1(kind: i32, wr: usize, rb: usize, cols: i32, x: usize, o: usize): void {
  const eb = elemBytes(kind);
  const c4 = cols & ~3;
  const w1 = wr + rb, w2 = w1 + rb, w3 = w2 + rb;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let j = 0; j < c4; j += 4) {
    const a = v128.load(x + (<usize>j << 2));
    const jw = <usize>j * eb;
    s0 = f32x4.add(s0, f32x4.mul(load4(kind, wr + jw), a));
    s1 = f32x4.add(s1, f32x4.mul(load4(kind, w1 + jw), a));
    s2 = f32x4.add(s2, f32x4.mul(load4(kind, w2 + jw), a));
    s3 = f32x4.add(s3, f32x4.mul(load4(kind, w3 + jw), a));
  }
  store<f32>(o, tailFloat(kind, wr, cols, x, hsum(s0)));
  store<f32>(o + 4, tailFloat(kind, w1, cols, x, hsum(s1)));
  store<f32>(o + 8, tailFloat(kind, w2, cols, x, hsum(s2)));
  store<f32>(o + 12, tailFloat(kind, w3, cols, x, hsum(s3)));
}

/** t plus the products of the columns past the last multiple of 4, one at a time. */
// @ts-ignore: decorator
@inline function tailFloat(kind: i32, wr: usize, cols: i32, x: usize, t: f32): f32 {
  for (let j = cols & ~3; j < cols; j++) {
    let v: f32;
    if (kind == FLOAT_F32) v = load<f32>(wr + (<usize>j << 2));
    else if (kind == FLOAT_BF16) v = bf16ToF32(load<u16>(wr + (<usize>j << 1)));
    else v = halfScale(load<u16>(wr + (<usize>j << 1)));
    t += v * load<f32>(x + (<usize>j << 2));
  }
  return t;
}
