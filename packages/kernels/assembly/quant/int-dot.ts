// Integer dot products of unpacked weight bytes with prepared int16 activations, shared by the quantised types.
import { dot16 } from '../simd';

/** Σ w·a over 32 values: w as two i8x16 vectors (values 0–15 and 16–31), a 32 × i16 at a; i32x4 partial sums. */
// @ts-ignore: decorator
@inline export function dot32(lo: v128, hi: v128, a: usize): v128 {
  return i32x4.add(dot16(lo, a), dot16(hi, a + 32));
}

/** Low nibbles of 16 bytes. */
// @ts-ignore: decorator
@inline export function nibLo(v: v128): v128 {
  return v128.and(v, i8x16.splat(0x0f));
}

/** High nibbles of 16 bytes (a 16-bit shift then a mask: x86 has no byte shift). */
// @ts-ignore: decorator
@inline export function nibHi(v: v128): v128 {
  return v128.and(i16x8.shr_u(v, 4), i8x16.splat(0x0f));
}

/** Σ over 32 values of widened weights (w0..w3: 4 × 8 × i16) with 32 activations at a. */
// @ts-ignore: decorator
@inline export function dotWide(w0: v128, w1: v128, w2: v128, w3: v128, a: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(a)), i32x4.dot_i16x8_s(w1, v128.load(a, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(a, 32)), i32x4.dot_i16x8_s(w3, v128.load(a, 48))),
  );
}

/** Σ over 16 values of widened weights (lo, hi: 2 × 8 × i16) with 16 activations at a. */
// @ts-ignore: decorator
@inline export function dotWide16(lo: v128, hi: v128, a: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(a)), i32x4.dot_i16x8_s(hi, v128.load(a, 16)));
}
