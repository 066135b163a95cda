import { open, type FileHandle } from 'node:fs/promises';
import { ModelFileError, TruncatedModelFileError } from './model-errors.js';
import { ggmlTypeById, type GgmlTypeInfo } from '@edge-node/kernels';
import { readByteRange } from './byte-range-read.js';

/**
 * A GGUF metadata value. Integers become numbers (64-bit ones stay bigint only when they exceed 2^53),
 * bools booleans, strings strings, and arrays plain JS arrays of these — e.g. `tokenizer.ggml.tokens` is a
 * string[] and `tokenizer.ggml.scores` a number[].
 */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** GGML ne[]: innermost (contiguous) dimension first — the reverse of the PyTorch shape. */
  ne: number[];
  typeId: number;
  type: GgmlTypeInfo;
  elements: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

export interface GgufHeader {
  file: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset where the tensor data section starts. */
  dataOffset: number;
  fileSize: number;
  /** Bytes read from the file to parse the header (the header region, never tensor data beyond it). */
  headerBytesRead: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const DEFAULT_ALIGNMENT = 32;
const GGML_MAX_DIMS = 4;
/** First read; grown geometrically when the header (mostly the vocabulary) is larger. */
const INITIAL_HEADER_READ = 64 * 1024;

enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Smallest encoded size of one value of each type; bounds array counts before allocating. */
function minValueSize(type: number): number {
  switch (type) {
    case ValueType.UINT8:
    case ValueType.INT8:
    case ValueType.BOOL:
      return 1;
    case ValueType.UINT16:
    case ValueType.INT16:
      return 2;
    case ValueType.UINT32:
    case ValueType.INT32:
    case ValueType.FLOAT32:
      return 4;
    case ValueType.STRING:
    case ValueType.UINT64:
    case ValueType.INT64:
    case ValueType.FLOAT64:
      return 8;
    case ValueType.ARRAY:
      return 12;
    default:
      return -1;
  }
}

/** Thrown inside the parser when the bytes read so far end before the header does. */
class NeedMoreBytes {
  constructor(readonly atLeast: number) {}
}

class HeaderCursor {
  pos = 0;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder('utf-8');

  constructor(
    private readonly bytes: Uint8Array,
    private readonly fileSize: number,
    private readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number, what: string): void {
    const end = this.pos + n;
    if (end <= this.bytes.byteLength) return;
    if (end > this.fileSize) {
      throw new TruncatedModelFileError(
        this.file,
        `GGUF header cut short: reading ${what} at byte ${this.pos} needs ${n} bytes but the file is ${this.fileSize} bytes`,
      );
    }
    throw new NeedMoreBytes(end);
  }

  /** Asks for at least n more bytes up front, so a big array costs one re-read instead of many. */
  expect(n: number): void {
    const end = Math.min(this.pos + n, this.fileSize);
    if (end > this.bytes.byteLength) throw new NeedMoreBytes(end);
  }

  /** A length/count field: rejects values that cannot fit in the rest of the file before anything is allocated. */
  count(what: string, minBytesEach: number): number {
    const n = this.u64(what);
    const remaining = this.fileSize - this.pos;
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || Number(n) * minBytesEach > remaining) {
      throw new ModelFileError(
        this.file,
        `corrupt GGUF header: ${what} is ${n} at byte ${this.pos - 8}, which cannot fit in the remaining ${remaining} bytes of the file`,
      );
    }
    return Number(n);
  }

  /** Takes n bytes for `what` (checked to be there): the offset they start at. */
  private take(n: number, what: string): number {
    this.need(n, what);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.take(1, 'u8'));
  }
  i8(): number {
    return this.view.getInt8(this.take(1, 'i8'));
  }
  u16(): number {
    return this.view.getUint16(this.take(2, 'u16'), true);
  }
  i16(): number {
    return this.view.getInt16(this.take(2, 'i16'), true);
  }
  u32(what = 'u32'): number {
    return this.view.getUint32(this.take(4, what), true);
  }
  i32(): number {
    return this.view.getInt32(this.take(4, 'i32'), true);
  }
  f32(): number {
    return this.view.getFloat32(this.take(4, 'f32'), true);
  }
  f64(): number {
    return this.view.getFloat64(this.take(8, 'f64'), true);
  }
  u64(what = 'u64'): bigint {
    return this.view.getBigUint64(this.take(8, what), true);
  }
  i64(): bigint {
    return this.view.getBigInt64(this.take(8, 'i64'), true);
  }
  private shortString(len: number): string {
    const b = this.bytes;
    let s = '';
    for (let i = this.pos; i < this.pos + len; i++) {
      if (b[i] >= 0x80) return this.decoder.decode(b.subarray(this.pos, this.pos + len));
      s += String.fromCharCode(b[i]);
    }
    return s;
  }

  string(what: string): string {
    const len = this.count(`length of ${what}`, 1);
    this.need(len, what);
    // Short ASCII strings (most vocabulary pieces) skip TextDecoder's per-call overhead.
    const s = len <= 32 ? this.shortString(len) : this.decoder.decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
}

function bigToValue(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function readValue(c: HeaderCursor, type: number, key: string, file: string): GgufValue {
  switch (type) {
    case ValueType.UINT8:
      return c.u8();
    case ValueType.INT8:
      return c.i8();
    case ValueType.UINT16:
      return c.u16();
    case ValueType.INT16:
      return c.i16();
    case ValueType.UINT32:
      return c.u32();
    case ValueType.INT32:
      return c.i32();
    case ValueType.FLOAT32:
      return c.f32();
    case ValueType.BOOL:
      return c.u8() !== 0;
    case ValueType.STRING:
      return c.string(`value of ${key}`);
    case ValueType.UINT64:
      return bigToValue(c.u64());
    case ValueType.INT64:
      return bigToValue(c.i64());
    case ValueType.FLOAT64:
      return c.f64();
    case ValueType.ARRAY: {
      const elemType = c.u32();
      const size = minValueSize(elemType);
      if (size < 0) {
        throw new ModelFileError(file, `corrupt GGUF header: metadata ${key} is an array of unknown value type ${elemType}`);
      }
      const n = c.count(`element count of ${key}`, size);
      c.expect(n * size);
      const out: GgufValue[] = new Array<GgufValue>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, elemType, key, file);
      return out;
    }
    default:
      throw new ModelFileError(file, `corrupt GGUF header: metadata ${key} has unknown value type ${type}`);
  }
}

function parseHeader(bytes: Uint8Array, fileSize: number, file: string): Omit<GgufHeader, 'headerBytesRead'> {
  const c = new HeaderCursor(bytes, fileSize, file);
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    throw new ModelFileError(file, `not a GGUF file (magic bytes 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF")`);
  }
  const version = c.u32('version');
  if (version !== 2 && version !== 3) {
    const hint = version === 1 ? ' (GGUF v1 is obsolete: re-convert the model)' : version > 0xffff ? ' (a big-endian GGUF?)' : '';
    throw new ModelFileError(file, `unsupported GGUF version ${version}${hint}; edge-node reads versions 2 and 3`);
  }
  // Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8); smallest KV: key (8) + type (4) + 1.
  const tensorCount = c.count('tensor count', 24);
  const kvCount = c.count('metadata count', 13);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key #${i}`);
    const type = c.u32(`type of ${key}`);
    metadata.set(key, readValue(c, type, key, file));
  }

  const alignValue = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
  if (typeof alignValue !== 'number' || alignValue <= 0 || (alignValue & (alignValue - 1)) !== 0) {
    throw new ModelFileError(file, `general.alignment is ${String(alignValue)}; it must be a power of two`);
  }
  const alignment = alignValue;

  const raw: RawTensorEntry[] = [];
  for (let i = 0; i < tensorCount; i++) raw.push(readTensorEntry(c, i, fileSize, file));
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;

  const seen = new Set<string>();
  const tensors = raw.map((entry) => {
    if (seen.has(entry.name)) throw new ModelFileError(file, `corrupt GGUF header: tensor ${entry.name} appears twice`);
    seen.add(entry.name);
    return tensorInfo(entry, alignment, dataOffset, fileSize, file);
  });
  return { file, version, metadata, tensors, alignment, dataOffset, fileSize };
}

/** One entry of the tensor index as the file states it (relative offset, type id), before it is checked. */
interface RawTensorEntry {
  name: string;
  ne: number[];
  typeId: number;
  rel: number;
}

function readTensorEntry(c: HeaderCursor, i: number, fileSize: number, file: string): RawTensorEntry {
  const name = c.string(`name of tensor #${i}`);
  const nDims = c.u32(`dimension count of ${name}`);
  if (nDims < 1 || nDims > GGML_MAX_DIMS) {
    throw new ModelFileError(file, `corrupt GGUF header: tensor ${name} has ${nDims} dimensions (1..${GGML_MAX_DIMS} allowed)`);
  }
  const ne: number[] = [];
  for (let d = 0; d < nDims; d++) {
    const dim = c.u64(`dimension ${d} of ${name}`);
    if (dim > BigInt(fileSize) * 8n) {
      throw new ModelFileError(file, `corrupt GGUF header: tensor ${name} dimension ${d} is ${dim}, larger than the file could hold`);
    }
    ne.push(Number(dim));
  }
  const typeId = c.u32(`type of ${name}`);
  const rel = c.u64(`offset of ${name}`);
  if (rel > BigInt(fileSize)) {
    throw new TruncatedModelFileError(file, `tensor ${name} data starts at relative offset ${rel}, past the end of the file (${fileSize} bytes)`);
  }
  return { name, ne, typeId, rel: Number(rel) };
}

/** A tensor's entry checked against its type, the alignment and the file's size, with its absolute place. */
function tensorInfo({ name, ne, typeId, rel }: RawTensorEntry, alignment: number, dataOffset: number, fileSize: number, file: string): GgufTensorInfo {
  const type = ggmlTypeById(typeId);
  if (type === undefined) {
    throw new ModelFileError(file, `tensor ${name} has unknown GGML type id ${typeId} (file corrupt, or newer than edge-node)`);
  }
  if (ne[0] % type.blockSize !== 0) {
    throw new ModelFileError(file, `tensor ${name}: row length ${ne[0]} is not a multiple of the ${type.name} block size ${type.blockSize}`);
  }
  if (rel % alignment !== 0) {
    throw new ModelFileError(file, `corrupt GGUF header: tensor ${name} offset ${rel} is not aligned to ${alignment}`);
  }
  const elements = ne.reduce((a, b) => a * b, 1);
  const byteLength = (elements / type.blockSize) * type.typeSize;
  const offset = dataOffset + rel;
  if (offset + byteLength > fileSize) {
    throw new TruncatedModelFileError(
      file,
      `tensor ${name} occupies bytes ${offset}..${offset + byteLength} but the file is only ${fileSize} bytes`,
    );
  }
  return { name, ne, typeId, type, elements, offset, byteLength };
}

/**
 * Parses a GGUF (v2/v3) header — metadata and tensor index — reading only the header region. Pass an open
 * handle to reuse it; otherwise the file is opened and closed here.
 */
export async function readGgufHeader(file: string, handle?: FileHandle): Promise<GgufHeader> {
  const fh = handle ?? (await open(file, 'r'));
  try {
    const fileSize = (await fh.stat()).size;
    let bytes = await readByteRange(fh, file, 0, Math.min(INITIAL_HEADER_READ, fileSize));
    for (;;) {
      try {
        return { ...parseHeader(bytes, fileSize, file), headerBytesRead: bytes.byteLength };
      } catch (e) {
        if (!(e instanceof NeedMoreBytes)) throw e;
        // Grow geometrically (and by array-size hints) so a multi-MB vocabulary costs a few reads and re-parses.
        const target = Math.min(fileSize, Math.max(e.atLeast, bytes.byteLength * 4));
        const grown = new Uint8Array(target);
        grown.set(bytes);
        await readByteRange(fh, file, bytes.byteLength, target - bytes.byteLength, grown.subarray(bytes.byteLength));
        bytes = grown;
      }
    }
  } finally {
    if (handle === undefined) await fh.close();
  }
}

/** Parses a whole GGUF file held in memory (a small one, such as a LoRA adapter); `file` names it in errors. */
export function parseGgufBytes(bytes: Uint8Array, file: string): GgufHeader {
  // The whole file is here, so the parser never asks for more bytes: a short file is reported as truncated.
  return { ...parseHeader(bytes, bytes.byteLength, file), headerBytesRead: bytes.byteLength };
}

/** The PyTorch-order shape ([out, in] for a linear weight) of a GGUF tensor. */
export function ggufShape(info: GgufTensorInfo): number[] {
  return [...info.ne].reverse();
}
