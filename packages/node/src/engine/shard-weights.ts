import { ggmlRowBytes, ggmlTypeByName, MAX_ARENA_BYTES, UnsupportedKernelTypeError, type KernelArena, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import type { ModelFile, TensorInfo } from '../model/model-file.js';
import { ModelFileError, UnsupportedTensorTypeError } from '../model/model-errors.js';
import type { ModelConfig } from '../model/model-config.js';
import { checkLayerRange, type LayerRange } from './layer-range.js';
import { layerLoraBytes, placeLayerLora, type LayerLora, type ShardLora } from './lora-weights.js';

/** One layer's weights in their file encoding (matrices) and as f32 (norms, biases), all in one arena. */
export interface LayerWeights {
  arena: KernelArena;
  attnNorm: number;
  wq: WeightMatrix;
  wk: WeightMatrix;
  wv: WeightMatrix;
  /** q, k, v biases (Qwen2), f32, or 0. */
  bq: number;
  bk: number;
  bv: number;
  wo: WeightMatrix;
  ffnNorm: number;
  wgate: WeightMatrix;
  wup: WeightMatrix;
  wdown: WeightMatrix;
  /** The LoRA pairs applied to this layer's projections (null without an adapter, or when it leaves the layer alone). */
  lora: LayerLora | null;
}

export interface ShardWeights {
  config: ModelConfig;
  range: LayerRange;
  layers: LayerWeights[];
  /** Token embeddings [vocab, hidden] (first stage; on a tied last stage it is the head too). */
  embedding: WeightMatrix | null;
  /** Final norm (f32) and output head [vocab, hidden] (last stage). */
  outNorm: number;
  head: WeightMatrix | null;
  /** Every arena the shard uses, in layer order. */
  arenas: KernelArena[];
  /** Bytes of weights held (LoRA pairs included). */
  weightBytes: number;
}

/** What a new arena is filled to with weights at most: the rest of its 4 GiB is left for KV caches and scratch. */
const ARENA_WEIGHT_BYTES = 2.5 * 2 ** 30;

/**
 * Reads the tensors of layers [startLayer, endLayer) — plus the embeddings on the first stage and the final norm and
 * head on the last — straight from the file into kernel arenas, in the file's encoding (nothing is dequantised or
 * copied on the way). Layers are grouped into arenas of at most ARENA_WEIGHT_BYTES, so a shard may hold any number
 * of bytes its memory allows, across several WebAssembly memories. With `lora`, each layer's LoRA pairs (checked
 * against the model when the adapter was read) go into its arena as F32 beside its weights.
 */
export async function loadShardWeights(model: ModelFile, range: LayerRange, runtime: KernelRuntime, lora?: ShardLora): Promise<ShardWeights> {
  const c = model.config;
  checkLayerRange(range, c.numLayers);
  const headName = c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight';
  const groups = planArenas(model, range, headName, lora);
  const arenas: KernelArena[] = [];
  const layers: LayerWeights[] = [];
  let embedding: WeightMatrix | null = null;
  let head: WeightMatrix | null = null;
  let outNorm = 0;
  let weightBytes = 0;
  try {
    for (const g of groups) {
      const arena = await runtime.createArena(g.bytes);
      arenas.push(arena);
      const fill = new ArenaFill(model, runtime, arena);
      if (g.extra.includes('token_embd.weight')) embedding = await fill.matrix('token_embd.weight', c.vocabSize, c.hiddenSize);
      for (const l of g.layers) {
        layers.push({ ...(await loadLayer(fill, c, l)), lora: placeLayerLora(arena, lora, l) });
        fill.bytes += layerLoraBytes(lora, l);
      }
      if (g.extra.includes('output_norm.weight')) {
        outNorm = await fill.vector('output_norm.weight', c.hiddenSize);
        // A tied head is the embedding matrix; share it when this arena already holds it.
        head = c.tiedEmbeddings && embedding?.arena === arena ? embedding : await fill.matrix(headName, c.vocabSize, c.hiddenSize);
      }
      weightBytes += fill.bytes;
    }
  } catch (err) {
    await Promise.all(arenas.map((a) => runtime.releaseArena(a)));
    throw err;
  }
  return { config: c, range: { ...range }, layers, embedding, outNorm, head, arenas, weightBytes };
}

/** The tensors at the model's ends, without any layer: what a training job's owner keeps (the data stays with it). */
export interface ModelEnds {
  arena: KernelArena;
  embedding: WeightMatrix;
  /** Final norm (f32). */
  outNorm: number;
  head: WeightMatrix;
}

/** Reads the embeddings, the final norm and the head (one matrix when tied) into one arena. */
export async function loadModelEnds(model: ModelFile, runtime: KernelRuntime): Promise<ModelEnds> {
  const c = model.config;
  const headName = c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight';
  const names = [...new Set(['token_embd.weight', 'output_norm.weight', headName])];
  const arena = await runtime.createArena(names.reduce((s, n) => s + tensorInfo(model, n).byteLength + 64, 0));
  try {
    const fill = new ArenaFill(model, runtime, arena);
    const embedding = await fill.matrix('token_embd.weight', c.vocabSize, c.hiddenSize);
    const outNorm = await fill.vector('output_norm.weight', c.hiddenSize);
    const head = c.tiedEmbeddings ? embedding : await fill.matrix(headName, c.vocabSize, c.hiddenSize);
    return { arena, embedding, outNorm, head };
  } catch (err) {
    await runtime.releaseArena(arena);
    throw err;
  }
}

/** Layers for one arena, with the tensors beside them (embeddings, final norm, head) and the bytes they take. */
interface ArenaPlan {
  layers: number[];
  extra: string[];
  bytes: number;
}

/** The arenas: consecutive groups of layers up to ARENA_WEIGHT_BYTES; the embedding joins the first group, the head the last. */
function planArenas(model: ModelFile, range: LayerRange, headName: string, lora: ShardLora | undefined): ArenaPlan[] {
  const c = model.config;
  const isFirst = range.startLayer === 0;
  const isLast = range.endLayer === c.numLayers;
  const bytesOf = (names: string[]): number => names.reduce((s, n) => s + tensorInfo(model, n).byteLength + 64, 0);
  const groups: ArenaPlan[] = [];
  for (let l = range.startLayer; l < range.endLayer; l++) {
    const extra = [...(l === range.startLayer && isFirst ? ['token_embd.weight'] : []), ...(l === range.endLayer - 1 && isLast ? ['output_norm.weight', headName] : [])];
    const bytes = bytesOf(layerTensors(c, l)) + bytesOf([...new Set(extra)]) + layerLoraBytes(lora, l);
    if (bytes > MAX_ARENA_BYTES) throw new ModelFileError(model.path, `layer ${l} needs ${bytes} bytes, more than one WebAssembly memory holds`);
    const last = groups[groups.length - 1];
    if (last && last.bytes + bytes <= ARENA_WEIGHT_BYTES) {
      last.layers.push(l);
      last.extra.push(...extra);
      last.bytes += bytes;
    } else groups.push({ layers: [l], extra, bytes });
  }
  return groups;
}

/** The names of layer l's tensors. */
function layerTensors(c: ModelConfig, l: number): string[] {
  const p = `blk.${l}.`;
  const names = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'].map((n) => `${p}${n}.weight`);
  if (c.attentionBias) names.push(`${p}attn_q.bias`, `${p}attn_k.bias`, `${p}attn_v.bias`);
  return names;
}

async function loadLayer(fill: ArenaFill, c: ModelConfig, l: number): Promise<Omit<LayerWeights, 'lora'>> {
  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  const p = `blk.${l}.`;
  return {
    arena: fill.arena,
    attnNorm: await fill.vector(`${p}attn_norm.weight`, H),
    wq: await fill.matrix(`${p}attn_q.weight`, qDim, H),
    wk: await fill.matrix(`${p}attn_k.weight`, kvDim, H),
    wv: await fill.matrix(`${p}attn_v.weight`, kvDim, H),
    bq: c.attentionBias ? await fill.vector(`${p}attn_q.bias`, qDim) : 0,
    bk: c.attentionBias ? await fill.vector(`${p}attn_k.bias`, kvDim) : 0,
    bv: c.attentionBias ? await fill.vector(`${p}attn_v.bias`, kvDim) : 0,
    wo: await fill.matrix(`${p}attn_output.weight`, H, qDim),
    ffnNorm: await fill.vector(`${p}ffn_norm.weight`, H),
    wgate: await fill.matrix(`${p}ffn_gate.weight`, F, H),
    wup: await fill.matrix(`${p}ffn_up.weight`, F, H),
    wdown: await fill.matrix(`${p}ffn_down.weight`, H, F),
  };
}

/** Reads tensors of the model file into one arena, checking their types and shapes. */
class ArenaFill {
  /** Bytes of weights read into the arena so far. */
  bytes = 0;

  constructor(
    private readonly model: ModelFile,
    private readonly runtime: KernelRuntime,
    readonly arena: KernelArena,
  ) {}

  /** A matrix [rows, cols] in its file encoding, which the kernels must multiply. */
  async matrix(name: string, rows: number, cols: number): Promise<WeightMatrix> {
    const { model, arena } = this;
    const info = tensorInfo(model, name);
    const type = ggmlTypeByName(info.dtype);
    if (!type) throw new UnsupportedTensorTypeError(model.path, name, info.dtype);
    try {
      this.runtime.actFormat(type);
    } catch (err) {
      if (err instanceof UnsupportedKernelTypeError) throw new UnsupportedTensorTypeError(model.path, name, info.dtype);
      throw err;
    }
    const elements = info.shape.reduce((a, b) => a * b, 1);
    if (elements !== rows * cols) throw new ModelFileError(model.path, `tensor ${name} has ${elements} values, expected ${rows} × ${cols} for this config`);
    const rowBytes = ggmlRowBytes(type, cols);
    const ptr = arena.alloc(info.byteLength);
    await model.readTensorBytes(name, arena.bytes(ptr, info.byteLength));
    this.bytes += info.byteLength;
    return { arena, type, rows, cols, ptr, rowBytes };
  }

  /** A vector of n values as f32. */
  async vector(name: string, n: number): Promise<number> {
    const data = await this.model.readTensor(name);
    if (data.length !== n) throw new ModelFileError(this.model.path, `tensor ${name} has ${data.length} values, expected ${n}`);
    const ptr = this.arena.alloc(n * 4);
    this.arena.f32(ptr, n).set(data);
    this.bytes += n * 4;
    return ptr;
  }
}

function tensorInfo(model: ModelFile, name: string): TensorInfo {
  const info = model.tensors.get(name);
  if (!info) throw new ModelFileError(model.path, `tensor ${name} is missing`);
  return info;
}
