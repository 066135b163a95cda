import type { GgmlTypeInfo } from './ggml-types.js';

/**
 * Fills `bytes` with blocks of a type that the kernels can multiply as they would real weights: varied quants and
 * sub-scales, and small normal f16 scales (no NaN, infinity or subnormal to send them down a path real weights do not
 * take). Float types get small varied values. `next` gives bytes 0..255 (default: a fixed pattern); the device probe
 * and the build-equivalence tests use it.
 */
export function fillSampleBlocks(type: GgmlTypeInfo, bytes: Uint8Array, next: () => number = pattern()): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 0xff;
  if (type.name === 'F32' || type.name === 'BF16' || type.name === 'F16') {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const step = type.name === 'F32' ? 4 : 2;
    for (let i = 0; i + step <= bytes.length; i += step) {
      const v = ((bytes[i]! % 97) - 48) / 4800;
      if (type.name === 'F32') view.setFloat32(i, v, true);
      else view.setUint16(i, type.name === 'BF16' ? new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16 : 0x2000 + (bytes[i]! % 64), true);
    }
    return;
  }
  const fields = type.halfScaleOffsets ?? [];
  for (let b = 0; b + type.typeSize <= bytes.length; b += type.typeSize) {
    for (const f of fields) {
      // f16 with exponent 2^-7 … 2^-4 and a varied mantissa and sign: 0x2000–0x2fff, or negated.
      const h = 0x2000 | ((bytes[b + f]! << 4) & 0x0ff0) | (bytes[b + f + 1]! & 0x80 ? 0x8000 : 0);
      bytes[b + f] = h & 0xff;
      bytes[b + f + 1] = h >> 8;
    }
  }
}

function pattern(): () => number {
  let i = 0;
  return () => {
    const v = (i * 7 + (i >> 5) * 13) & 0xff;
    i++;
    return v;
  };
}
