/**
 * Encoding float32 values into the storage types the synthetic writers emit, bit-compatible with the tools
 * that produce real files: F16/BF16 round to nearest even (numpy / torch casts, ggml's F16C path), Q8_0 as
 * gguf-py's reference quantiser (per block of 32: d = amax / 127 in float32, q = roundf(x / d), d stored F16).
 */
import { ggmlTypeByName } from '@edge-node/kernels';
import { f16ToF32, f32ToF16 } from '@edge-node/node';

export type EncodedDType = 'F32' | 'F16' | 'BF16' | 'Q8_0';

const Q8_0_TYPE = ggmlTypeByName('Q8_0')!;
export const Q8_0_BLOCK = Q8_0_TYPE.blockSize;
/** Bytes of one Q8_0 block (from the kernels' type table): an F16 scale and 32 int8 quants. */
export const Q8_0_BLOCK_BYTES = Q8_0_TYPE.typeSize;

/** Bytes needed to store `elements` values of `dtype`. */
export function encodedByteLength(dtype: EncodedDType, elements: number): number {
  switch (dtype) {
    case 'F32':
      return elements * 4;
    case 'F16':
    case 'BF16':
      return elements * 2;
    case 'Q8_0':
      return (elements / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

/** Nearest F16 bit pattern of a float32 value (ties to even; overflow to ±Inf; NaN stays NaN): the readers' encoder. */
export const float32ToF16Bits = f32ToF16;

/** Nearest bfloat16 bit pattern of a float32 bit pattern (ties to even, as torch does). */
function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** The F16 value nearest to `value`, as a number (what an F16 round trip yields). */
export function roundToF16(value: number): number {
  return f16ToF32(f32ToF16(value));
}

/** C's roundf: halves away from zero (Math.round rounds -2.5 to -2, roundf to -3). */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** Quantises one block of 32 float32 values into `out` at `offset` (34 bytes). */
export function quantizeQ8_0Block(src: Float32Array, srcOffset: number, out: Uint8Array, offset: number): void {
  let amax = 0;
  for (let j = 0; j < Q8_0_BLOCK; j++) {
    const a = Math.abs(src[srcOffset + j]);
    if (a > amax) amax = a;
  }
  const d = Math.fround(amax / 127);
  const h = float32ToF16Bits(d);
  out[offset] = h & 0xff;
  out[offset + 1] = h >>> 8;
  for (let j = 0; j < Q8_0_BLOCK; j++) {
    // float32 division then roundf, as numpy does on float32 blocks; an all-zero block stores zeros.
    const q = d === 0 ? 0 : roundf(Math.fround(src[srcOffset + j] / d));
    out[offset + 2 + j] = q & 0xff;
  }
}

/**
 * Encodes `values` (length a multiple of 32 for Q8_0) into a new little-endian byte array of `dtype`.
 */
export function encodeTensorData(values: Float32Array, dtype: EncodedDType): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F32': {
      const copy = new Float32Array(values);
      return new Uint8Array(copy.buffer);
    }
    case 'F16':
    case 'BF16': {
      const bits = new Uint32Array(values.buffer, values.byteOffset, n);
      const out = new Uint16Array(n);
      if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = f32ToF16(values[i]);
      else for (let i = 0; i < n; i++) out[i] = f32BitsToBf16Bits(bits[i]);
      return new Uint8Array(out.buffer);
    }
    case 'Q8_0': {
      if (n % Q8_0_BLOCK !== 0) throw new RangeError(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${n}`);
      const out = new Uint8Array(encodedByteLength('Q8_0', n));
      for (let b = 0; b < n / Q8_0_BLOCK; b++) quantizeQ8_0Block(values, b * Q8_0_BLOCK, out, b * Q8_0_BLOCK_BYTES);
      return out;
    }
  }
}
