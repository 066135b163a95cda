import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BufferedFileWriter } from './buffered-file-writer.js';
import { TensorWriteError } from './synth-errors.js';
import { encodeTensorData, encodedByteLength } from './tensor-encoding.js';

/**
 * Hugging Face safetensors writer: an 8-byte little-endian header length, a JSON header (padded with spaces
 * to 8 bytes, as the reference implementation does), then raw little-endian tensor bytes. Tensors stream
 * chunk by chunk. With maxShardBytes, files are named model-0000i-of-0000n.safetensors and listed in
 * model.safetensors.index.json, like transformers' save_pretrained.
 */

export type SafetensorsDType = 'F32' | 'F16' | 'BF16';

export interface SafetensorsTensorSource {
  /** HF tensor name, e.g. model.layers.0.self_attn.q_proj.weight. */
  name: string;
  shape: readonly number[];
  dtype: SafetensorsDType;
  /** The float32 values in row-major order, in chunks. */
  chunks(): Iterable<Float32Array>;
}

export interface SafetensorsWriteOptions {
  tensors: readonly SafetensorsTensorSource[];
  /** String metadata stored under __metadata__ (transformers writes {"format": "pt"}). */
  metadata?: Readonly<Record<string, string>>;
  /** Start a new shard before a tensor that would push the current one past this many bytes. */
  maxShardBytes?: number;
}

export interface SafetensorsWriteResult {
  /** Absolute paths of the .safetensors files, in order. */
  files: string[];
  /** model.safetensors.index.json when sharded, else null. */
  indexPath: string | null;
  /** Sum of tensor data bytes (the index's metadata.total_size). */
  totalSize: number;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function tensorBytes(t: SafetensorsTensorSource): number {
  return encodedByteLength(t.dtype, elementCount(t.shape));
}

async function writeShard(path: string, tensors: readonly SafetensorsTensorSource[], metadata: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const size = tensorBytes(t);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const lengthBytes = new Uint8Array(8);
  new DataView(lengthBytes.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);

  const out = await BufferedFileWriter.create(path);
  try {
    await out.write(lengthBytes);
    await out.write(jsonBytes);
    for (const t of tensors) {
      const expected = elementCount(t.shape);
      let seen = 0;
      for (const chunk of t.chunks()) {
        seen += chunk.length;
        if (seen > expected) break;
        await out.write(encodeTensorData(chunk, t.dtype));
      }
      if (seen !== expected) {
        throw new TensorWriteError(t.name, `produced ${seen} values, shape [${t.shape.join(', ')}] needs ${expected}`);
      }
    }
    await out.close();
  } catch (err) {
    await out.abort();
    await rm(path, { force: true });
    throw err;
  }
}

/** Writes the tensors into `dir` as one model.safetensors or as shards with an index. */
export async function writeSafetensors(dir: string, options: SafetensorsWriteOptions): Promise<SafetensorsWriteResult> {
  const metadata = { format: 'pt', ...(options.metadata ?? {}) };
  const names = new Set<string>();
  for (const t of options.tensors) {
    if (names.has(t.name)) throw new TensorWriteError(t.name, 'appears twice');
    names.add(t.name);
    if (t.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new TensorWriteError(t.name, `shape [${t.shape.join(', ')}] must hold non-negative integers`);
    }
  }

  const shards: SafetensorsTensorSource[][] = [[]];
  let current = 0;
  for (const t of options.tensors) {
    const size = tensorBytes(t);
    const last = shards[shards.length - 1];
    if (options.maxShardBytes !== undefined && last.length > 0 && current + size > options.maxShardBytes) {
      shards.push([t]);
      current = size;
    } else {
      last.push(t);
      current += size;
    }
  }
  const totalSize = options.tensors.reduce((a, t) => a + tensorBytes(t), 0);

  if (shards.length === 1) {
    const file = join(dir, 'model.safetensors');
    await writeShard(file, shards[0], metadata);
    return { files: [file], indexPath: null, totalSize };
  }

  const n = shards.length;
  const pad = (i: number): string => String(i).padStart(5, '0');
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const fileName = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    const file = join(dir, fileName);
    await writeShard(file, shards[i], metadata);
    files.push(file);
    for (const t of shards[i]) weightMap[t.name] = fileName;
  }
  const indexPath = join(dir, 'model.safetensors.index.json');
  await writeFile(indexPath, JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
  return { files, indexPath, totalSize };
}
