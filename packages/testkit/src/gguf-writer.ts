import { rm } from 'node:fs/promises';
import { BufferedFileWriter } from './buffered-file-writer.js';
import { TensorWriteError } from './synth-errors.js';
import { encodeTensorData, encodedByteLength, Q8_0_BLOCK } from './tensor-encoding.js';
import type { EncodedDType } from './tensor-encoding.js';

/**
 * GGUF v3 writer: metadata, tensor infos, then tensor data streamed one chunk at a time (the whole file is
 * never in memory). Layout follows ggml's gguf.cpp: little-endian, u64 lengths/counts, tensor data aligned.
 */

type NumericType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
type BigType = 'uint64' | 'int64';
export type GgufScalarType = NumericType | BigType | 'bool' | 'string';

export type GgufMetadataValue =
  | { type: NumericType; value: number }
  | { type: BigType; value: bigint | number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'bool'; value: readonly boolean[] }
  | { type: 'array'; itemType: NumericType; value: ArrayLike<number> };

/** Shorthands for metadata values: `gguf.u32(3)`, `gguf.strings([...])`. */
export const gguf = {
  u32: (value: number): GgufMetadataValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufMetadataValue => ({ type: 'int32', value }),
  u64: (value: number | bigint): GgufMetadataValue => ({ type: 'uint64', value }),
  f32: (value: number): GgufMetadataValue => ({ type: 'float32', value }),
  bool: (value: boolean): GgufMetadataValue => ({ type: 'bool', value }),
  str: (value: string): GgufMetadataValue => ({ type: 'string', value }),
  strings: (value: readonly string[]): GgufMetadataValue => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: ArrayLike<number>): GgufMetadataValue => ({ type: 'array', itemType: 'float32', value }),
  i32s: (value: ArrayLike<number>): GgufMetadataValue => ({ type: 'array', itemType: 'int32', value }),
};

const VALUE_TYPE_IDS: Record<GgufScalarType | 'array', number> = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
};

/** ggml type ids of the storage types this writer encodes. */
export const GGML_TYPE_IDS: Record<EncodedDType, number> = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 };

/** One tensor to write. Its values are pulled lazily, in row-major order, when its turn comes. */
export interface GgufTensorSource {
  name: string;
  /** Logical shape, outermost first ([out, in] for a linear weight); written to GGUF as ne[] reversed. */
  shape: readonly number[];
  dtype: EncodedDType;
  /** Yields the float32 values in row-major order; for Q8_0 every chunk holds a multiple of 32 values. */
  chunks(): Iterable<Float32Array>;
}

export interface GgufWriteOptions {
  /** Key/value pairs in file order; general.alignment is added when alignment is not the default 32. */
  metadata: ReadonlyArray<readonly [string, GgufMetadataValue]>;
  tensors: readonly GgufTensorSource[];
  alignment?: number;
}

export interface GgufWriteResult {
  path: string;
  bytes: number;
  /** File offset where tensor data begins. */
  dataOffset: number;
}

const encoder = new TextEncoder();

/** Growable little-endian byte builder for the header (metadata of a 150k-token vocab is a few MB). */
class HeaderBuilder {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Appends `n` bytes written by `write` at the current end (little-endian for the typed writers below). */
  private put(n: number, write: (view: DataView, at: number) => void): void {
    this.reserve(n);
    write(this.view, this.length);
    this.length += n;
  }

  u8(v: number): void { this.put(1, (d, at) => d.setUint8(at, v)); }
  i8(v: number): void { this.put(1, (d, at) => d.setInt8(at, v)); }
  u16(v: number): void { this.put(2, (d, at) => d.setUint16(at, v, true)); }
  i16(v: number): void { this.put(2, (d, at) => d.setInt16(at, v, true)); }
  u32(v: number): void { this.put(4, (d, at) => d.setUint32(at, v, true)); }
  i32(v: number): void { this.put(4, (d, at) => d.setInt32(at, v, true)); }
  f32(v: number): void { this.put(4, (d, at) => d.setFloat32(at, v, true)); }
  f64(v: number): void { this.put(8, (d, at) => d.setFloat64(at, v, true)); }
  u64(v: number | bigint): void { this.put(8, (d, at) => d.setBigUint64(at, BigInt(v), true)); }
  i64(v: number | bigint): void { this.put(8, (d, at) => d.setBigInt64(at, BigInt(v), true)); }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  string(s: string): void {
    const b = encoder.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(h: HeaderBuilder, type: GgufScalarType, value: number | bigint | boolean | string): void {
  switch (type) {
    case 'uint8':
      return h.u8(value as number);
    case 'int8':
      return h.i8(value as number);
    case 'uint16':
      return h.u16(value as number);
    case 'int16':
      return h.i16(value as number);
    case 'uint32':
      return h.u32(value as number);
    case 'int32':
      return h.i32(value as number);
    case 'float32':
      return h.f32(value as number);
    case 'float64':
      return h.f64(value as number);
    case 'uint64':
      return h.u64(value as number | bigint);
    case 'int64':
      return h.i64(value as number | bigint);
    case 'bool':
      return h.u8(value ? 1 : 0);
    case 'string':
      return h.string(value as string);
  }
}

function writeValue(h: HeaderBuilder, v: GgufMetadataValue): void {
  h.u32(VALUE_TYPE_IDS[v.type]);
  if (v.type !== 'array') {
    writeScalar(h, v.type, v.value);
    return;
  }
  h.u32(VALUE_TYPE_IDS[v.itemType]);
  h.u64(v.value.length);
  for (let i = 0; i < v.value.length; i++) writeScalar(h, v.itemType, v.value[i]);
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function validateTensor(t: GgufTensorSource): void {
  if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new TensorWriteError(t.name, `shape [${t.shape.join(', ')}] must have 1-4 positive integer dimensions`);
  }
  const rowLength = t.shape[t.shape.length - 1];
  if (t.dtype === 'Q8_0' && rowLength % Q8_0_BLOCK !== 0) {
    throw new TensorWriteError(t.name, `Q8_0 needs the row length (${rowLength}) to be a multiple of ${Q8_0_BLOCK}`);
  }
  if (encoder.encode(t.name).length >= 64) {
    throw new TensorWriteError(t.name, 'GGUF tensor names must be shorter than 64 bytes');
  }
}

/** Writes a GGUF v3 file; on failure the partial file is removed. */
export async function writeGguf(path: string, options: GgufWriteOptions): Promise<GgufWriteResult> {
  const alignment = options.alignment ?? 32;
  const metadata = [...options.metadata];
  if (alignment !== 32 && !metadata.some(([k]) => k === 'general.alignment')) {
    metadata.push(['general.alignment', gguf.u32(alignment)]);
  }
  for (const t of options.tensors) validateTensor(t);

  const h = new HeaderBuilder();
  h.bytes(encoder.encode('GGUF'));
  h.u32(3);
  h.u64(options.tensors.length);
  h.u64(metadata.length);
  for (const [key, value] of metadata) {
    h.string(key);
    writeValue(h, value);
  }
  const sizes: number[] = [];
  let offset = 0;
  for (const t of options.tensors) {
    h.string(t.name);
    h.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]);
    h.u32(GGML_TYPE_IDS[t.dtype]);
    h.u64(offset);
    const size = encodedByteLength(t.dtype, elementCount(t.shape));
    sizes.push(size);
    offset += size + ((alignment - (size % alignment)) % alignment);
  }
  h.padTo(alignment);
  const dataOffset = h.length;

  const out = await BufferedFileWriter.create(path);
  try {
    await out.write(h.result());
    for (let i = 0; i < options.tensors.length; i++) {
      const t = options.tensors[i];
      const expected = elementCount(t.shape);
      let seen = 0;
      for (const chunk of t.chunks()) {
        if (t.dtype === 'Q8_0' && chunk.length % Q8_0_BLOCK !== 0) {
          throw new TensorWriteError(t.name, `Q8_0 chunk of ${chunk.length} values is not a multiple of ${Q8_0_BLOCK}`);
        }
        seen += chunk.length;
        if (seen > expected) break;
        await out.write(encodeTensorData(chunk, t.dtype));
      }
      if (seen !== expected) {
        throw new TensorWriteError(t.name, `produced ${seen} values, shape [${t.shape.join(', ')}] needs ${expected}`);
      }
      await out.writeZeros((alignment - (sizes[i] % alignment)) % alignment);
    }
    const bytes = out.position;
    await out.close();
    return { path, bytes, dataOffset };
  } catch (err) {
    await out.abort();
    await rm(path, { force: true });
    throw err;
  }
}
