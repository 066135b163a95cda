import { open, readFile, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelFileError, TruncatedModelFileError } from './model-errors.js';
import { readByteRange } from './byte-range-read.js';

/** One tensor as a safetensors header describes it (Hugging Face name, absolute offsets). */
export interface SafetensorsTensor {
  name: string;
  /** safetensors dtype string: "F32", "F16", "BF16", "I64", ... */
  dtype: string;
  shape: number[];
  file: string;
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  metadata: Record<string, string>;
  tensors: SafetensorsTensor[];
  headerBytesRead: number;
}

/** The safetensors format caps the JSON header at 100 MB; anything larger is a corrupt length field. */
const MAX_HEADER_BYTES = 100_000_000;

const ELEMENT_BYTES: ReadonlyMap<string, number> = new Map([
  ['F64', 8],
  ['F32', 4],
  ['F16', 2],
  ['BF16', 2],
  ['I64', 8],
  ['I32', 4],
  ['I16', 2],
  ['I8', 1],
  ['U8', 1],
  ['BOOL', 1],
  ['F8_E4M3', 1],
  ['F8_E5M2', 1],
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDim(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses a .safetensors header (8-byte length + JSON), reading only those bytes. */
export async function readSafetensorsHeader(file: string, handle?: FileHandle): Promise<SafetensorsHeader> {
  const fh = handle ?? (await open(file, 'r'));
  try {
    const fileSize = (await fh.stat()).size;
    if (fileSize < 8) throw new TruncatedModelFileError(file, `safetensors file is ${fileSize} bytes, shorter than its 8-byte header length`);
    const lenBytes = await readByteRange(fh, file, 0, 8);
    const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new ModelFileError(file, `safetensors header length ${headerLen} is absurd (limit ${MAX_HEADER_BYTES} bytes): the file is corrupt or not safetensors`);
    }
    const n = Number(headerLen);
    if (8 + n > fileSize) {
      throw new TruncatedModelFileError(file, `safetensors header claims ${n} bytes but the file is only ${fileSize} bytes`);
    }
    const jsonBytes = await readByteRange(fh, file, 8, n);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8').decode(jsonBytes));
    } catch (e) {
      throw new ModelFileError(file, `safetensors header is not valid JSON (${(e as Error).message})`);
    }
    if (!isRecord(parsed)) throw new ModelFileError(file, 'safetensors header is not a JSON object');

    const dataStart = 8 + n;
    const dataSize = fileSize - dataStart;
    const metadata: Record<string, string> = {};
    const tensors: SafetensorsTensor[] = [];
    for (const [name, entry] of Object.entries(parsed)) {
      if (name === '__metadata__') {
        if (isRecord(entry)) for (const [k, v] of Object.entries(entry)) if (typeof v === 'string') metadata[k] = v;
        continue;
      }
      if (!isRecord(entry)) throw new ModelFileError(file, `safetensors entry ${name} is not an object`);
      const { dtype, shape, data_offsets: offsets } = entry;
      if (typeof dtype !== 'string' || !Array.isArray(shape) || !shape.every(isDim) || !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim)) {
        throw new ModelFileError(file, `safetensors entry ${name} lacks a valid dtype, shape or data_offsets`);
      }
      const [begin, end] = offsets as [number, number];
      if (begin > end) throw new ModelFileError(file, `safetensors entry ${name} has data_offsets [${begin}, ${end}] out of order`);
      if (end > dataSize) {
        throw new TruncatedModelFileError(file, `tensor ${name} ends at data byte ${end} but the data section holds only ${dataSize} bytes`);
      }
      const elemBytes = ELEMENT_BYTES.get(dtype);
      const dims = shape as number[];
      if (elemBytes !== undefined) {
        const expected = dims.reduce((a, b) => a * b, 1) * elemBytes;
        if (expected !== end - begin) {
          throw new ModelFileError(file, `tensor ${name} (${dtype} ${JSON.stringify(dims)}) should occupy ${expected} bytes but data_offsets span ${end - begin}`);
        }
      }
      tensors.push({ name, dtype, shape: dims, file, offset: dataStart + begin, byteLength: end - begin });
    }
    return { file, fileSize, metadata, tensors, headerBytesRead: 8 + n };
  } finally {
    if (handle === undefined) await fh.close();
  }
}

const SHARD_RE = /^model-\d+-of-\d+\.safetensors$/;

/** The safetensors files of a Hugging Face model folder, in the order the index (or the folder) lists them. */
export async function findSafetensorsFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir);
  if (entries.includes('model.safetensors')) return [join(dir, 'model.safetensors')];
  if (entries.includes('model.safetensors.index.json')) {
    const indexPath = join(dir, 'model.safetensors.index.json');
    let index: unknown;
    try {
      index = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (e) {
      throw new ModelFileError(indexPath, `not valid JSON (${(e as Error).message})`);
    }
    const weightMap = isRecord(index) ? index.weight_map : undefined;
    if (!isRecord(weightMap)) throw new ModelFileError(indexPath, 'has no "weight_map" object');
    const shards = [...new Set(Object.values(weightMap))];
    for (const s of shards) {
      // Shard names come from the file: refuse anything that would leave the model folder.
      if (typeof s !== 'string' || s.includes('/') || s.includes('\\') || s === '..') {
        throw new ModelFileError(indexPath, `weight_map names an invalid shard file ${JSON.stringify(s)}`);
      }
      if (!entries.includes(s)) throw new ModelFileError(indexPath, `weight_map names shard ${s}, which is not in ${dir}`);
    }
    return (shards as string[]).map((s) => join(dir, s));
  }
  const shards = entries.filter((e) => SHARD_RE.test(e)).sort();
  if (shards.length > 0) {
    throw new ModelFileError(dir, `has sharded safetensors (${shards[0]}, ...) but no model.safetensors.index.json`);
  }
  const single = entries.filter((e) => e.endsWith('.safetensors'));
  if (single.length === 1) return [join(dir, single[0])];
  throw new ModelFileError(dir, single.length === 0 ? 'contains no .safetensors weights' : `contains several .safetensors files (${single.join(', ')}) and no index`);
}
