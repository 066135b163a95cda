import { readFile } from 'node:fs/promises';
import { encodeGguf, type GgufEncodedTensor } from './gguf-encoder.js';
import { parseGgufBytes, type GgufHeader, type GgufTensorInfo } from './gguf-reader.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half-float.js';
import { baseArchitectureName, checkLoraAdapter, type LoraAdapter, type LoraPair, type LoraStoredType } from './lora-adapter.js';
import type { ModelFile } from './model-file.js';
import { LoraAdapterError } from './model-errors.js';

/** GGML type ids of the encodings an adapter's tensors may have here. */
const F32 = 0;
const F16 = 1;
const BF16 = 30;

/** How writeLoraAdapter stores A and B: F32 (exact) or F16 (half the bytes; llama.cpp then multiplies in f16). */
export type LoraFileType = 'F32' | 'F16';
const TYPE_IDS: Record<LoraStoredType, number> = { F32, F16, BF16 };

/**
 * Reads a LoRA adapter in llama.cpp's GGUF format (`general.type = adapter`, `adapter.type = lora`,
 * `adapter.lora.alpha`, `<base tensor>.lora_a` [ne: in, rank] and `.lora_b` [ne: rank, out], F32, F16 or BF16) and
 * checks it against the base model it will be applied to. `*_norm.weight` tensors are skipped, as llama.cpp does.
 * Throws a LoraAdapterError (a ModelFileError) naming the file, the tensor and what is wrong.
 */
export async function readLoraAdapter(source: Uint8Array | string, base: ModelFile, name = 'LoRA adapter'): Promise<LoraAdapter> {
  const file = typeof source === 'string' ? source : name;
  const bytes = typeof source === 'string' ? await readAdapterBytes(source) : source;
  const header = parseGgufBytes(bytes, file);
  const alpha = checkAdapterMetadata(header, base, file);
  const tensors = new Map<string, LoraPair>();
  for (const [target, { a, b }] of pairTensors(header, file)) {
    const info = base.tensors.get(target);
    if (info === undefined) throw new LoraAdapterError(file, `the base model ${base.path} has no tensor ${target} (an adapter for another model?)`, target);
    const [out, inF] = info.shape;
    const rank = a.ne[1] ?? 1;
    if (a.ne.length !== 2 || a.ne[0] !== inF) {
      throw new LoraAdapterError(file, `lora_a has ne [${a.ne.join(', ')}], expected [${inF}, rank] for the base's [${out}, ${inF}] (hint: wrong base model?)`, target);
    }
    if (b.ne.length !== 2 || b.ne[1] !== out) {
      throw new LoraAdapterError(file, `lora_b has ne [${b.ne.join(', ')}], expected [rank, ${out}] for the base's [${out}, ${inF}] (hint: wrong base model?)`, target);
    }
    if (b.ne[0] !== rank) {
      throw new LoraAdapterError(file, `lora_a's rank ${rank} (ne[1]) differs from lora_b's ${b.ne[0]} (ne[0]); is lora_a transposed?`, target);
    }
    const aType = storedType(a);
    const bType = storedType(b);
    tensors.set(target, { rank, a: decodeTensor(bytes, a, file), b: decodeTensor(bytes, b, file), ...(aType !== 'F32' ? { aType } : {}), ...(bType !== 'F32' ? { bType } : {}) });
  }
  const adapter: LoraAdapter = { alpha, tensors };
  checkLoraAdapter(adapter, base, file);
  return adapter;
}

/**
 * The adapter as a GGUF file llama.cpp loads (`--lora`), after checking it against its base model: every pair in
 * `type`, or without it in the type it was read in (F32 for a pair made in memory).
 */
export function writeLoraAdapter(adapter: LoraAdapter, base: ModelFile, type?: LoraFileType): Uint8Array {
  checkLoraAdapter(adapter, base, 'the adapter to write');
  const tensors: GgufEncodedTensor[] = [];
  for (const [target, pair] of [...adapter.tensors].sort(([x], [y]) => compareTargets(x, y))) {
    const [out, inF] = base.tensors.get(target)!.shape;
    const aType = type ?? pair.aType ?? 'F32';
    const bType = type ?? pair.bType ?? 'F32';
    tensors.push({ name: `${target}.lora_a`, ne: [inF, pair.rank], typeId: TYPE_IDS[aType], data: encodeValues(pair.a, aType) });
    tensors.push({ name: `${target}.lora_b`, ne: [pair.rank, out], typeId: TYPE_IDS[bType], data: encodeValues(pair.b, bType) });
  }
  return encodeGguf(
    [
      ['general.type', { type: 'string', value: 'adapter' }],
      ['general.architecture', { type: 'string', value: baseArchitectureName(base) }],
      ['adapter.type', { type: 'string', value: 'lora' }],
      ['adapter.lora.alpha', { type: 'f32', value: adapter.alpha }],
    ],
    tensors,
  );
}

async function readAdapterBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LoraAdapterError(path, code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(err)})`);
  }
}

/** general.type, general.architecture and adapter.type checked; adapter.lora.alpha (0 when absent, as llama.cpp). */
function checkAdapterMetadata(header: GgufHeader, base: ModelFile, file: string): number {
  const str = (key: string): string => {
    const v = header.metadata.get(key);
    return typeof v === 'string' ? v : v === undefined ? '(absent)' : String(v);
  };
  if (str('general.type') !== 'adapter') {
    throw new LoraAdapterError(file, `general.type is ${str('general.type')}, expected "adapter" (a model file given as an adapter?)`);
  }
  if (str('adapter.type') !== 'lora') throw new LoraAdapterError(file, `adapter.type is ${str('adapter.type')}, expected "lora"`);
  const arch = baseArchitectureName(base);
  if (str('general.architecture') !== arch) {
    throw new LoraAdapterError(file, `general.architecture is ${str('general.architecture')} but the base model ${base.path} is ${arch}`);
  }
  const alpha = header.metadata.get('adapter.lora.alpha') ?? 0;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) {
    throw new LoraAdapterError(file, `adapter.lora.alpha is ${String(alpha)}; it must be a finite number`);
  }
  return alpha;
}

/** The file's tensors paired by base tensor: every name ends in .lora_a or .lora_b (norms aside), and each has its mate. */
function pairTensors(header: GgufHeader, file: string): Map<string, { a: GgufTensorInfo; b: GgufTensorInfo }> {
  const halves = new Map<string, { a?: GgufTensorInfo; b?: GgufTensorInfo }>();
  for (const t of header.tensors) {
    const m = /^(.*)\.lora_([ab])$/.exec(t.name);
    if (m === null) {
      if (t.name.endsWith('_norm.weight')) continue;
      throw new LoraAdapterError(file, 'has an unexpected suffix (a LoRA file holds <tensor>.lora_a and <tensor>.lora_b)', t.name);
    }
    const half = halves.get(m[1]) ?? {};
    half[m[2] === 'a' ? 'a' : 'b'] = t;
    halves.set(m[1], half);
  }
  const pairs = new Map<string, { a: GgufTensorInfo; b: GgufTensorInfo }>();
  for (const [target, { a, b }] of halves) {
    if (a === undefined || b === undefined) throw new LoraAdapterError(file, `the pair lacks its ${a === undefined ? 'lora_a' : 'lora_b'}`, target);
    pairs.set(target, { a, b });
  }
  return pairs;
}

function decodeTensor(bytes: Uint8Array, t: GgufTensorInfo, file: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + t.offset, t.byteLength);
  const out = new Float32Array(t.elements);
  if (t.typeId === F32) for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  else if (t.typeId === F16) for (let i = 0; i < out.length; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  else if (t.typeId === BF16) for (let i = 0; i < out.length; i++) out[i] = bf16ToF32(view.getUint16(i * 2, true));
  else throw new LoraAdapterError(file, `has type ${t.type.name}; edge-node reads LoRA tensors in F32, F16 or BF16`, t.name);
  return out;
}

function encodeValues(values: Float32Array, type: LoraStoredType): Uint8Array {
  const out = new Uint8Array(values.length * (type === 'F32' ? 4 : 2));
  const view = new DataView(out.buffer);
  if (type === 'F32') values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (type === 'F16') values.forEach((v, i) => view.setUint16(i * 2, f32ToF16(v), true));
  else values.forEach((v, i) => view.setUint16(i * 2, f32ToBf16(v), true));
  return out;
}

function storedType(t: GgufTensorInfo): LoraStoredType {
  return t.typeId === F16 ? 'F16' : t.typeId === BF16 ? 'BF16' : 'F32';
}

/** Layer order, then name: the order llama.cpp's converter writes, easy to read in a dump. */
function compareTargets(x: string, y: string): number {
  const layer = (n: string): number => Number(/^blk\.(\d+)\./.exec(n)?.[1] ?? -1);
  return layer(x) - layer(y) || (x < y ? -1 : x > y ? 1 : 0);
}
