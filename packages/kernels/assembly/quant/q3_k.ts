// Q3_K (ggml block_q3_K): super-blocks of 256 values, 110 bytes: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d.
// Sixteen sub-blocks of 16 with 6-bit scales (12 bytes: low 4 bits in bytes 0–7, high 2 bits in bytes 8–11; minus 32).
// Per half h (qs += 32h) and shift j < 4, value 128h + 32j + l (l < 32) is ((qs[l] >> 2j) & 3) − (bit 4h+j of
// hmask[l] ? 0 : 4), sub-block 8h + 2j + l/16;  x = d·(sc − 32)·q.   Activations: Q8_K (as vec_dot_q3_K_q8_K).
import { halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { dot16, hsum, pin } from '../simd';
import { dotWide16 } from './int-dot';

export const Q3_K_BLOCK_BYTES: usize = 110;

/** The 16 scales (6-bit, before the −32) of the 12 bytes at p, as 16 bytes of a vector. */
// @ts-ignore: decorator
@inline function scalesQ3K(p: usize): v128 {
  const a0 = load<u32>(p), a1 = load<u32>(p, 4), t = load<u32>(p, 8);
  let v = i32x4.splat((a0 & 0x0f0f0f0f) | ((t & 0x03030303) << 4));
  v = i32x4.replace_lane(v, 1, (a1 & 0x0f0f0f0f) | (((t >> 2) & 0x03030303) << 4));
  v = i32x4.replace_lane(v, 2, ((a0 >> 4) & 0x0f0f0f0f) | (((t >> 4) & 0x03030303) << 4));
  return i32x4.replace_lane(v, 3, ((a1 >> 4) & 0x0f0f0f0f) | (((t >> 6) & 0x03030303) << 4));
}

export function dequantQ3_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q3_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p, 108));
    const s8 = i8x16.sub(scalesQ3K(p + 96), i8x16.splat(32));
    for (let h = 0; h < 2; h++) {
      const q = p + 32 + (<usize>h << 5);
      for (let j = 0; j < 4; j++) {
        const m = 1 << (4 * h + j);
        const y = dst + (<usize>b << 10) + ((<usize>(128 * h + 32 * j)) << 2);
        for (let half = 0; half < 2; half++) {
          const dl = d * <f32>scaleAt(s8, 8 * h + 2 * j + half);
          for (let l = 16 * half; l < 16 * half + 16; l++) {
            const v = ((<i32>load<u8>(q + l) >> (2 * j)) & 3) - ((<i32>load<u8>(p + l) & m) != 0 ? 0 : 4);
            store<f32>(y + (<usize>l << 2), dl * <f32>v);
          }
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function blockDot(p: usize, xd: f32, aq: usize): v128 {
  const three = i8x16.splat(3), minus4 = i8x16.splat(-4), zero = i8x16.splat(0);
  const s8 = i8x16.sub(scalesQ3K(p + 96), i8x16.splat(32));
  const hm0 = v128.load(p), hm1 = v128.load(p + 16);
  let isum = i32x4.splat(0);
  for (let h = 0; h < 2; h++) {
    const q0 = v128.load(p + 32 + (<usize>h << 5)), q1 = v128.load(p + 48 + (<usize>h << 5));
    const a = aq + (<usize>h << 8);
    for (let j = 0; j < 4; j++) {
      const m = i8x16.splat(<i8>(<i32>1 << (4 * h + j)));
      // q − 4 where the hmask bit is clear: the low 2 bits OR 0xFC (−4) there.
      const w0 = v128.or(v128.and(i16x8.shr_u(q0, 2 * j), three), v128.and(i8x16.eq(v128.and(hm0, m), zero), minus4));
      const w1 = v128.or(v128.and(i16x8.shr_u(q1, 2 * j), three), v128.and(i8x16.eq(v128.and(hm1, m), zero), minus4));
      const aj = a + (<usize>j << 6);
      const sIdx = 8 * h + 2 * j;
      isum = i32x4.add(isum, i32x4.mul(dot16(w0, aj), i32x4.splat(scaleAt(s8, sIdx))));
      isum = i32x4.add(isum, i32x4.mul(dot16(w1, aj + 32), i32x4.splat(scaleAt(s8, sIdx + 1))));
    }
  }
  return f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(halfToF32(load<u16>(p, 108)) * xd));
}

/** Signed byte i of a vector (i a loop index: through a u64 lane, since lane indices must be constants). */
// @ts-ignore: decorator
@inline function scaleAt(v: v128, i: i32): i32 {
  const half = i < 8 ? i64x2.extract_lane(v, 0) : i64x2.extract_lane(v, 1);
  return <i32>(<i8>(half >> (<u64>(i & 7) << 3)));
}

// @ts-ignore: decorator
@inline function rowDot(wr: usize, ad: usize, nb: i32): f32 {
  const aq = ad + <usize>nb * 36;
  let s = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    s = f32x4.add(s, blockDot(wr + <usize>b * Q3_K_BLOCK_BYTES, load<f32>(ad + (<usize>b << 2)), aq + (<usize>b << 9)));
  }
  return hsum(s);
}

function rowQ3_K(wr: usize, ad: usize, nb: i32): f32 {
  return rowDot(wr, ad, nb);
}

/** rowDot for four activation rows: each sub-block is unpacked and widened once. */
function rowQ3_K_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const three = i8x16.splat(3), minus4 = i8x16.splat(-4), zero = i8x16.splat(0);
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q3_K_BLOCK_BYTES;
    const s8 = i8x16.sub(scalesQ3K(p + 96), i8x16.splat(32));
    const hm0 = v128.load(p), hm1 = v128.load(p + 16);
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    const aq = aqOff + (<usize>b << 9);
    for (let t = 0; t < 8; t++) {
      // t = 4h + j: bits 2j..2j+1 of qs[32h..], hmask bit t, sub-blocks 2t and 2t+1.
      const h = t >> 2, j = t & 3;
      const q0 = v128.load(p + 32 + (<usize>h << 5)), q1 = v128.load(p + 48 + (<usize>h << 5));
      const m = i8x16.splat(<i8>(<i32>1 << t));
      const w0 = v128.or(v128.and(i16x8.shr_u(q0, 2 * j), three), v128.and(i8x16.eq(v128.and(hm0, m), zero), minus4));
      const w1 = v128.or(v128.and(i16x8.shr_u(q1, 2 * j), three), v128.and(i8x16.eq(v128.and(hm1, m), zero), minus4));
      const at = aq + (<usize>t << 6);
      {
        const lo = i16x8.extend_low_i8x16_s(w0), hi = i16x8.extend_high_i8x16_s(w0);
        const scale = i32x4.splat(scaleAt(s8, 2 * t));
        i0 = i32x4.add(i0, i32x4.mul(dotWide16(lo, hi, ad + at), scale));
        pin(o, i0);
        i1 = i32x4.add(i1, i32x4.mul(dotWide16(lo, hi, a1 + at), scale));
        pin(o1, i1);
        i2 = i32x4.add(i2, i32x4.mul(dotWide16(lo, hi, a2 + at), scale));
        pin(o2, i2);
        i3 = i32x4.add(i3, i32x4.mul(dotWide16(lo, hi, a3 + at), scale));
      }
      {
        const lo = i16x8.extend_low_i8x16_s(w1), hi = i16x8.extend_high_i8x16_s(w1);
        const scale = i32x4.splat(scaleAt(s8, 2 * t + 1));
        i0 = i32x4.add(i0, i32x4.mul(dotWide16(lo, hi, ad + at + 32), scale));
        pin(o, i0);
        i1 = i32x4.add(i1, i32x4.mul(dotWide16(lo, hi, a1 + at + 32), scale));
        pin(o1, i1);
        i2 = i32x4.add(i2, i32x4.mul(dotWide16(lo, hi, a2 + at + 32), scale));
        pin(o2, i2);
        i3 = i32x4.add(i3, i32x4.mul(dotWide16(lo, hi, a3 + at + 32), scale));
      }
    }
    const d = halfToF32(load<u16>(p, 108));
    const xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.splat(d * load<f32>(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.splat(d * load<f32>(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.splat(d * load<f32>(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.splat(d * load<f32>(a3 + xo))));
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

export function matmulQ3_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  matmulRows4(rowQ3_K, rowQ3_K_4, w, <usize>nb * Q3_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
