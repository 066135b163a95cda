import { describe, expect, it } from 'vitest';
import { dequantize, storedByteLength } from '../src/model/tensor-dequant.js';
import { bf16ToF32, f16ToF32, f32ToF16 } from '../src/model/half-float.js';
import { UnsupportedTensorTypeError } from '../src/model/model-errors.js';

/** Reference Q4_0 quantiser (ggml's quantize_row_q4_0_ref), written independently of the dequantiser. */
function quantizeQ4_0(x: Float32Array): Uint8Array {
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 18);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d !== 0 ? 1 / d : 0;
    const h = f32ToF16(d);
    out[b * 18] = h & 0xff;
    out[b * 18 + 1] = h >> 8;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(x[b * 32 + j] * id + 8.5));
      const q1 = Math.min(15, Math.trunc(x[b * 32 + 16 + j] * id + 8.5));
      out[b * 18 + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

function f16Bytes(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => {
    const h = f32ToF16(v);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >> 8;
  });
  return out;
}

describe('half-precision conversions', () => {
  it('decodes known F16 bit patterns', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
  });

  it('encodes to the nearest F16, ties to even, and round-trips every finite pattern', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds up past the max finite value
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even mantissa
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even mantissa (up)
    expect(f32ToF16(2 ** -25 * 3)).toBe(0x0002); // subnormal tie 1.5 → 2
    for (let h = 0; h < 0x7c00; h++) {
      expect(f32ToF16(f16ToF32(h))).toBe(h);
      expect(f32ToF16(f16ToF32(h | 0x8000))).toBe(h | 0x8000);
    }
  });

  it('decodes bfloat16 as the top half of an F32', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc040)).toBe(-3);
    expect(bf16ToF32(0x3eaa)).toBe(Math.fround(0.33203125));
  });
});

describe('dequantize', () => {
  it('F32 copies bytes into a fresh array', () => {
    const src = new Float32Array([1.5, -2.25, 3e-8]);
    const bytes = new Uint8Array(src.buffer);
    const out = dequantize('F32', bytes, 3);
    expect(Array.from(out)).toEqual(Array.from(src));
    bytes.fill(0);
    expect(out[0]).toBe(1.5);
  });

  it('F16 little-endian pairs', () => {
    const out = dequantize('F16', new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x55, 0x35]), 3);
    expect(Array.from(out)).toEqual([1, -2, f16ToF32(0x3555)]);
  });

  it('BF16 little-endian pairs', () => {
    const out = dequantize('BF16', new Uint8Array([0x80, 0x3f, 0x40, 0xc0, 0x49, 0x40]), 3);
    expect(Array.from(out)).toEqual([1, -3, bf16ToF32(0x4049)]);
  });

  it('Q8_0: f16 scale times signed bytes, per block of 32', () => {
    const bytes = new Uint8Array(68);
    bytes.set(f16Bytes([0.5]), 0);
    for (let j = 0; j < 32; j++) bytes[2 + j] = (j - 16) & 0xff; // -16..15 as int8
    bytes.set(f16Bytes([-0.25]), 34);
    bytes[36] = 127;
    bytes[37] = 0x80; // -128
    const out = dequantize('Q8_0', bytes, 64);
    for (let j = 0; j < 32; j++) expect(out[j]).toBe((j - 16) * 0.5);
    expect(out[32]).toBe(-31.75);
    expect(out[33]).toBe(32);
    expect(out[34]).toBe(-0);
  });

  it('Q4_0: low nibbles are elements 0..15, high nibbles 16..31, value (q - 8) * d', () => {
    const bytes = new Uint8Array(18);
    bytes.set(f16Bytes([2]), 0);
    for (let j = 0; j < 16; j++) bytes[2 + j] = j | ((15 - j) << 4);
    const out = dequantize('Q4_0', bytes, 32);
    for (let j = 0; j < 16; j++) {
      expect(out[j]).toBe((j - 8) * 2);
      expect(out[16 + j]).toBe((15 - j - 8) * 2);
    }
  });

  it('Q4_0 round trip stays within half a quantisation step', () => {
    const n = 32 * 64;
    const x = new Float32Array(n);
    let seed = 12345;
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      x[i] = (seed / 2 ** 31 - 0.5) * (1 + (i % 7)); // varying block magnitudes
    }
    const q = quantizeQ4_0(x);
    expect(q.byteLength).toBe(storedByteLength('Q4_0', n));
    const y = dequantize('Q4_0', q, n);
    for (let b = 0; b < n / 32; b++) {
      const d = Math.abs(f16ToF32(q[b * 18] | (q[b * 18 + 1] << 8)));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        // The extreme value maps to -8 exactly; clamping at 15 can cost up to one full step at the other end.
        expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(d * 1.01 + 1e-6);
      }
    }
    const rms = Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]) ** 2, 0) / n);
    expect(rms).toBeLessThan(0.15);
  });

  it('names the type of anything else', () => {
    expect(() => dequantize('Q4_K', new Uint8Array(144), 256, { file: 'm.gguf', tensor: 'blk.0.attn_q.weight' })).toThrow(
      UnsupportedTensorTypeError,
    );
    expect(() => dequantize('Q4_K', new Uint8Array(144), 256, { file: 'm.gguf', tensor: 'blk.0.attn_q.weight' })).toThrow(
      /m\.gguf: tensor blk\.0\.attn_q\.weight has type Q4_K/,
    );
  });

  it('rejects too few bytes and partial blocks', () => {
    expect(() => dequantize('Q8_0', new Uint8Array(33), 32)).toThrow(RangeError);
    expect(() => dequantize('Q4_0', new Uint8Array(18), 16)).toThrow(RangeError);
  });
});
