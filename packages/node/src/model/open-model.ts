import { open, readFile, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from './model-config.js';
import type { ModelFile, RopeLayout, TensorInfo, TensorName, TokenizerSource } from './model-file.js';
import { ModelFileError, UnsupportedTensorTypeError } from './model-errors.js';
import { readGgufHeader, ggufShape, type GgufHeader } from './gguf-reader.js';
import { modelConfigFromGguf, ggufRopeLayout } from './gguf-config.js';
import { modelConfigFromHf } from './hf-config.js';
import { findSafetensorsFiles, readSafetensorsHeader } from './safetensors-reader.js';
import { canonicalTensorName } from './hf-tensor-names.js';
import { checkTensorShapes, expectedTensorShapes } from './tensor-shape-check.js';
import { dequantize, isStoredDType } from './tensor-dequant.js';
import { readByteRange } from './byte-range-read.js';
import { matchLlama3Scaling } from './llama3-rope-factors.js';

class OpenedModel implements ModelFile {
  private closed = false;

  constructor(
    readonly path: string,
    readonly format: 'gguf' | 'safetensors',
    readonly config: ModelConfig,
    readonly ropeLayout: RopeLayout,
    readonly tensors: ReadonlyMap<TensorName, TensorInfo>,
    readonly tokenizer: TokenizerSource,
    readonly chatTemplate: string | null,
    private readonly handles: ReadonlyMap<string, FileHandle>,
  ) {}

  async readTensor(name: TensorName): Promise<Float32Array> {
    const info = this.tensors.get(name);
    if (info === undefined) throw new ModelFileError(this.path, `has no tensor named ${name}`);
    const handle = this.handles.get(info.file);
    if (this.closed || handle === undefined) throw new ModelFileError(this.path, `is closed; cannot read ${name}`);
    return readTensorData(handle, info);
  }

  async readTensorBytes(name: TensorName, into?: Uint8Array): Promise<Uint8Array> {
    const info = this.tensors.get(name);
    if (info === undefined) throw new ModelFileError(this.path, `has no tensor named ${name}`);
    const handle = this.handles.get(info.file);
    if (this.closed || handle === undefined) throw new ModelFileError(this.path, `is closed; cannot read ${name}`);
    if (into && into.byteLength !== info.byteLength) throw new RangeError(`${name} has ${info.byteLength} bytes; the target holds ${into.byteLength}`);
    return readByteRange(handle, info.file, info.offset, info.byteLength, into);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.handles.values()].map((h) => h.close()));
  }
}

/** One positioned read of exactly the tensor's bytes, then dequantisation (F32 is used in place). */
async function readTensorData(handle: FileHandle, info: TensorInfo): Promise<Float32Array> {
  const elements = info.shape.reduce((a, b) => a * b, 1);
  const buffer = new ArrayBuffer(info.byteLength);
  const bytes = await readByteRange(handle, info.file, info.offset, info.byteLength, new Uint8Array(buffer));
  if (info.dtype === 'F32') return new Float32Array(buffer, 0, elements);
  return dequantize(info.dtype, bytes, elements, { file: info.file, tensor: info.name });
}

async function closeAll(handles: Iterable<FileHandle>): Promise<void> {
  await Promise.all([...handles].map((h) => h.close().catch(() => undefined)));
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ModelFileError(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelFileError(file, `is not valid JSON (${(e as Error).message})`);
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Rejects tensors the forward pass needs in a storage type edge-node cannot dequantise, before any shape talk. */
function checkTensorTypes(config: ModelConfig, types: ReadonlyMap<string, { file: string; typeName: string }>): void {
  for (const name of expectedTensorShapes(config).keys()) {
    const t = types.get(name);
    if (t !== undefined && !isStoredDType(t.typeName)) throw new UnsupportedTensorTypeError(t.file, name, t.typeName);
  }
}

async function openGguf(userPath: string, file: string): Promise<ModelFile> {
  const handle = await open(file, 'r');
  try {
    const header: GgufHeader = await readGgufHeader(file, handle);
    const config = modelConfigFromGguf(header);
    checkTensorTypes(config, new Map(header.tensors.map((t) => [t.name, { file, typeName: t.type.name }])));

    const tensors = new Map<TensorName, TensorInfo>();
    for (const t of header.tensors) {
      const dtype = t.type.name;
      if (!isStoredDType(dtype)) continue; // unused by the forward pass (checked above)
      tensors.set(t.name, { name: t.name, shape: ggufShape(t), dtype, file, offset: t.offset, byteLength: t.byteLength });
    }
    checkTensorShapes(config, tensors, file);

    const ropeFreqs = tensors.get('rope_freqs.weight');
    if (ropeFreqs !== undefined) {
      // Llama 3.1+ GGUFs carry RoPE scaling only as precomputed divisors; turn them back into parameters.
      const divisors = await readTensorData(handle, ropeFreqs);
      const scaling = matchLlama3Scaling(divisors, config.headDim, config.ropeTheta);
      if (scaling === null) {
        throw new ModelFileError(file, 'rope_freqs.weight does not match Llama 3 RoPE scaling (low 1, high 4, original context 8192); this RoPE scaling is not supported');
      }
      config.ropeScaling = scaling;
    }

    const template = header.metadata.get('tokenizer.chat_template');
    return new OpenedModel(
      userPath,
      'gguf',
      config,
      ggufRopeLayout(config.architecture),
      tensors,
      { kind: 'gguf', metadata: header.metadata },
      typeof template === 'string' ? template : null,
      new Map([[file, handle]]),
    );
  } catch (e) {
    await closeAll([handle]);
    throw e;
  }
}

/** tokenizer_config.json `chat_template` (a string, or a list of named templates) or chat_template.jinja. */
async function hfChatTemplate(dir: string, tokenizerConfig: unknown): Promise<string | null> {
  if (typeof tokenizerConfig === 'object' && tokenizerConfig !== null) {
    const t = (tokenizerConfig as Record<string, unknown>).chat_template;
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      const named = t.find(
        (x): x is { name: string; template: string } =>
          typeof x === 'object' && x !== null && (x as { name?: unknown }).name === 'default' && typeof (x as { template?: unknown }).template === 'string',
      );
      if (named !== undefined) return named.template;
    }
  }
  const jinja = join(dir, 'chat_template.jinja');
  return (await exists(jinja)) ? readFile(jinja, 'utf8') : null;
}

async function openHfFolder(userPath: string, dir: string): Promise<ModelFile> {
  const configPath = join(dir, 'config.json');
  if (!(await exists(configPath))) {
    throw new ModelFileError(dir, 'has no config.json (a Hugging Face model folder needs config.json next to its .safetensors weights)');
  }
  const tokenizerConfigPath = join(dir, 'tokenizer_config.json');
  const hasTokenizerConfig = await exists(tokenizerConfigPath);
  const tokenizerConfig = hasTokenizerConfig ? await readJson(tokenizerConfigPath) : null;
  const config = modelConfigFromHf(await readJson(configPath), tokenizerConfig, configPath, basename(dir));

  const tokenizerPath = join(dir, 'tokenizer.json');
  if (!(await exists(tokenizerPath))) {
    throw new ModelFileError(dir, 'has no tokenizer.json (edge-node needs the Hugging Face fast tokenizer file)');
  }

  const files = await findSafetensorsFiles(dir);
  const handles = new Map<string, FileHandle>();
  try {
    const tensors = new Map<TensorName, TensorInfo>();
    const types = new Map<string, { file: string; typeName: string }>();
    for (const file of files) {
      const handle = await open(file, 'r');
      handles.set(file, handle);
      const header = await readSafetensorsHeader(file, handle);
      for (const t of header.tensors) {
        const name = canonicalTensorName(t.name);
        if (name === null) continue;
        if (types.has(name)) throw new ModelFileError(file, `tensor ${t.name} is stored twice (also in ${types.get(name)?.file})`);
        types.set(name, { file, typeName: t.dtype });
        if (!isStoredDType(t.dtype)) continue;
        tensors.set(name, { name, shape: t.shape, dtype: t.dtype, file, offset: t.offset, byteLength: t.byteLength });
      }
    }
    // A tied model sometimes ships lm_head anyway; the config decides, and the engine uses token_embd.
    if (config.tiedEmbeddings) {
      tensors.delete('output.weight');
      types.delete('output.weight');
    }
    checkTensorTypes(config, types);
    checkTensorShapes(config, tensors, dir);

    return new OpenedModel(
      userPath,
      'safetensors',
      config,
      'half',
      tensors,
      { kind: 'tokenizer-json', path: tokenizerPath, configPath: hasTokenizerConfig ? tokenizerConfigPath : null },
      await hfChatTemplate(dir, tokenizerConfig),
      handles,
    );
  } catch (e) {
    await closeAll(handles.values());
    throw e;
  }
}

/**
 * Opens a model: a .gguf file, a folder holding exactly one .gguf, or a Hugging Face folder (config.json,
 * tokenizer.json, model.safetensors or sharded model-0000k-of-0000n.safetensors + index). Reads headers and
 * config only; weights are read tensor by tensor through `readTensor`. Problems throw ModelFileError subclasses.
 */
export async function openModel(path: string): Promise<ModelFile> {
  const abs = resolve(path);
  const st = await stat(abs).catch((e: NodeJS.ErrnoException) => {
    throw new ModelFileError(abs, e.code === 'ENOENT' ? 'does not exist' : `cannot be opened (${e.code ?? e.message})`);
  });
  if (st.isFile()) {
    if (abs.endsWith('.safetensors')) return openHfFolder(path, dirname(abs));
    return openGguf(path, abs);
  }
  if (!st.isDirectory()) throw new ModelFileError(abs, 'is neither a model file nor a model folder');

  const entries = await readdir(abs);
  if (entries.includes('config.json') && entries.some((e) => e.endsWith('.safetensors'))) return openHfFolder(path, abs);
  const ggufs = entries.filter((e) => e.endsWith('.gguf'));
  if (ggufs.length === 1) return openGguf(path, join(abs, ggufs[0]));
  if (ggufs.length > 1) throw new ModelFileError(abs, `contains several .gguf files (${ggufs.join(', ')}); pass the one to load`);
  if (!entries.includes('config.json')) {
    throw new ModelFileError(abs, 'has no config.json (a model folder needs config.json + .safetensors weights, or exactly one .gguf file)');
  }
  return openHfFolder(path, abs);
}
