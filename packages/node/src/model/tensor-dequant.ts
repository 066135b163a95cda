import type { StoredDType } from './model-file.js';
import { UnsupportedTensorTypeError } from './model-errors.js';
import { ggmlTypeByName, KERNEL_TYPE_NAMES } from '@edge-node/kernels';
import { f16LookupTable } from './half-float.js';

// Block geometry from the kernels' type table, the one place each type's block is defined.
const Q8_0_TYPE = ggmlTypeByName('Q8_0')!;
const Q4_0_TYPE = ggmlTypeByName('Q4_0')!;
/** Q8_0 and Q4_0 blocks hold 32 elements. */
export const QUANT_BLOCK_SIZE = Q8_0_TYPE.blockSize;
const Q8_0_BLOCK_BYTES = Q8_0_TYPE.typeSize;
const Q4_0_BLOCK_BYTES = Q4_0_TYPE.typeSize;

const STORED: ReadonlySet<string> = new Set<string>(KERNEL_TYPE_NAMES);
/** Types `dequantize` converts to float32 in JS (norms, biases, tests); the rest only the kernels read. */
const JS_DEQUANTISED: ReadonlySet<string> = new Set<StoredDType>(['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0']);

export function isStoredDType(typeName: string): typeName is StoredDType {
  return STORED.has(typeName);
}

/**
 * Bytes that `elements` values occupy in `typeName` (any GGML type name), or null when the count is not a
 * whole number of blocks or the type is unknown.
 */
export function storedByteLength(typeName: string, elements: number): number | null {
  const t = ggmlTypeByName(typeName);
  if (t === undefined || elements % t.blockSize !== 0) return null;
  return (elements / t.blockSize) * t.typeSize;
}

/** Where the bytes came from, so an error can name the file and tensor. */
export interface DequantContext {
  file: string;
  tensor: string;
}

/**
 * Converts `elements` values stored as `typeName` in `bytes` to a new Float32Array. Any type other than
 * F32/F16/BF16/Q8_0/Q4_0 throws UnsupportedTensorTypeError naming the type.
 */
export function dequantize(
  typeName: string,
  bytes: Uint8Array,
  elements: number,
  context: DequantContext = { file: '<memory>', tensor: '<unnamed>' },
): Float32Array {
  if (!JS_DEQUANTISED.has(typeName)) throw new UnsupportedTensorTypeError(context.file, context.tensor, typeName);
  const need = storedByteLength(typeName, elements);
  if (need === null) {
    throw new RangeError(`${context.tensor}: ${elements} elements is not a whole number of ${typeName} blocks`);
  }
  if (bytes.byteLength < need) {
    throw new RangeError(`${context.tensor}: ${typeName} x ${elements} needs ${need} bytes, got ${bytes.byteLength}`);
  }
  switch (typeName) {
    case 'F32':
      return dequantF32(bytes, elements);
    case 'F16':
      return dequantF16(bytes, elements);
    case 'BF16':
      return dequantBF16(bytes, elements);
    case 'Q8_0':
      return dequantQ8_0(bytes, elements);
    case 'Q4_0':
      return dequantQ4_0(bytes, elements);
    default:
      throw new UnsupportedTensorTypeError(context.file, context.tensor, typeName);
  }
}

function dequantF32(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
  return out;
}

function dequantF16(bytes: Uint8Array, n: number): Float32Array {
  const table = f16LookupTable();
  const out = new Float32Array(n);
  for (let i = 0, b = 0; i < n; i++, b += 2) out[i] = table[bytes[b] | (bytes[b + 1] << 8)];
  return out;
}

function dequantBF16(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0, b = 0; i < n; i++, b += 2) bits[i] = (bytes[b] | (bytes[b + 1] << 8)) << 16;
  return out;
}

function dequantQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const table = f16LookupTable();
  const out = new Float32Array(n);
  const blocks = n / QUANT_BLOCK_SIZE;
  for (let blk = 0; blk < blocks; blk++) {
    const base = blk * Q8_0_BLOCK_BYTES;
    const d = table[bytes[base] | (bytes[base + 1] << 8)];
    const o = blk * QUANT_BLOCK_SIZE;
    for (let j = 0; j < QUANT_BLOCK_SIZE; j++) {
      // int8 from a byte: sign-extend via shifts.
      out[o + j] = ((bytes[base + 2 + j] << 24) >> 24) * d;
    }
  }
  return out;
}

function dequantQ4_0(bytes: Uint8Array, n: number): Float32Array {
  const table = f16LookupTable();
  const out = new Float32Array(n);
  const blocks = n / QUANT_BLOCK_SIZE;
  for (let blk = 0; blk < blocks; blk++) {
    const base = blk * Q4_0_BLOCK_BYTES;
    const d = table[bytes[base] | (bytes[base + 1] << 8)];
    const o = blk * QUANT_BLOCK_SIZE;
    for (let j = 0; j < 16; j++) {
      const q = bytes[base + 2 + j];
      out[o + j] = ((q & 0x0f) - 8) * d;
      out[o + j + 16] = ((q >> 4) - 8) * d;
    }
  }
  return out;
}
