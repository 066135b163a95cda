// The 6-bit scales and minimums of Q4_K and Q5_K: 12 bytes for 8 sub-blocks (ggml's get_scale_min_k4):
//   j < 4: scale = s[j] & 63,                         min = s[j + 4] & 63
//   j ≥ 4: scale = (s[j + 4] & 15) | (s[j − 4] >> 6) << 4, min = (s[j + 4] >> 4) | (s[j] >> 6) << 4
// Also the Q8_K block sums product that applies the minimums.
import { i16Pick } from './int-dot';

/** The 8 scales of the 12 scale bytes at p, as 8 bytes of a u64 (scale j = byte j). */
// @ts-ignore: decorator
@inline export function scalesK4(p: usize): u64 {
  const a = load<u32>(p), c = load<u32>(p, 8);
  const low = a & 0x3f3f3f3f;
  const high = (c & 0x0f0f0f0f) | (((a >> 6) & 0x03030303) << 4);
  return <u64>low | (<u64>high << 32);
}

/** The 8 minimums of the 12 scale bytes at p, as 8 bytes of a u64. */
// @ts-ignore: decorator
@inline export function minsK4(p: usize): u64 {
  const b = load<u32>(p, 4), c = load<u32>(p, 8);
  const low = b & 0x3f3f3f3f;
  const high = ((c >> 4) & 0x0f0f0f0f) | (((b >> 6) & 0x03030303) << 4);
  return <u64>low | (<u64>high << 32);
}

/** Byte j of a u64. */
// @ts-ignore: decorator
@inline export function byteOf(v: u64, j: i32): i32 {
  return <i32>((v >> (<u64>j << 3)) & 0xff);
}

/** Σ_j mins[j]·(bsums[2j] + bsums[2j+1]) as i32x4 partial sums; mins from minsK4, bsums 16 × i16 at s. */
// @ts-ignore: decorator
@inline export function minsDot(mins: u64, s: usize): v128 {
  // Each byte twice: a shuffle V8 recognises as one punpcklbw (a swizzle by a constant costs four more instructions
  // to build the constant, plus a fix-up for out-of-range indices).
  const m = i64x2.splat(mins);
  const dup = i8x16.shuffle(m, m, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const lo = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(dup), v128.load(s));
  return i32x4.add(lo, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(dup), v128.load(s, 16)));
}

/** Byte indices putting minsK4's bytes in i16 lanes m0, m4, m1, m5, m2, m6, m3, m7 (128: a zero byte). */
const MINS_PAIRED = memory.data<u8>([0, 128, 4, 128, 1, 128, 5, 128, 2, 128, 6, 128, 3, 128, 7, 128], 16);

/**
 * minsDot's lanes from the relaxed build's Q8_KP sums of 32 at s (activation.ts: sub-blocks 0, 4, 1, 5, …): lane i is
 * m_i·S_i + m_(4+i)·S_(4+i) in both, here in one shuffle and one pmaddwd instead of minsDot's six operations.
 */
// @ts-ignore: decorator
@inline export function minsDotP(mins: u64, s: usize): v128 {
  return i32x4.dot_i16x8_s(i16Pick(i64x2.splat(mins), v128.load(MINS_PAIRED)), v128.load(s));
}
