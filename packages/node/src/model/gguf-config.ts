import { basename } from 'node:path';
import type { Architecture, ModelConfig } from './model-config.js';
import type { RopeLayout } from './model-file.js';
import { ModelFileError, UnsupportedArchitectureError } from './model-errors.js';
import type { GgufHeader, GgufValue } from './gguf-reader.js';

/** general.architecture → edge-node architecture. llama.cpp writes Mistral models as "llama". */
const ARCHITECTURES: ReadonlyMap<string, Architecture> = new Map([
  ['llama', 'llama'],
  ['mistral', 'llama'],
  ['qwen2', 'qwen2'],
]);

/** llama.cpp permutes Llama Q/K rows for interleaved-pair RoPE but keeps Qwen2's NEOX (rotate_half) order. */
export function ggufRopeLayout(architecture: Architecture): RopeLayout {
  return architecture === 'llama' ? 'interleaved' : 'half';
}

class MetadataFields {
  constructor(
    private readonly metadata: ReadonlyMap<string, GgufValue>,
    private readonly file: string,
  ) {}

  get(key: string): GgufValue | undefined {
    return this.metadata.get(key);
  }

  positiveInt(key: string, fallback?: number): number {
    const v = this.metadata.get(key) ?? fallback;
    if (v === undefined) throw new ModelFileError(this.file, `GGUF metadata lacks ${key}`);
    if (Array.isArray(v)) throw new ModelFileError(this.file, `GGUF metadata ${key} varies per layer, which edge-node does not support`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new ModelFileError(this.file, `GGUF metadata ${key} is ${String(v)}, expected a positive integer`);
    }
    return v;
  }

  positiveNumber(key: string, fallback: number): number {
    const v = this.metadata.get(key) ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new ModelFileError(this.file, `GGUF metadata ${key} is ${String(v)}, expected a positive number`);
    }
    return v;
  }

  tokenId(key: string): number | null {
    const v = this.metadata.get(key);
    // llama.cpp writes -1 / 0xFFFFFFFF for "no such token".
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 0xffffffff ? v : null;
  }
}

/**
 * Builds a ModelConfig from a parsed GGUF header (metadata + tensor index). The vocabulary size is the row
 * count of token_embd (that is what the logits span), falling back to the token list's length.
 */
export function modelConfigFromGguf(header: GgufHeader): ModelConfig {
  const { file, metadata } = header;
  const m = new MetadataFields(metadata, file);
  const archName = m.get('general.architecture');
  if (typeof archName !== 'string') throw new ModelFileError(file, 'GGUF metadata lacks general.architecture');
  const architecture = ARCHITECTURES.get(archName);
  if (architecture === undefined) throw new UnsupportedArchitectureError(file, archName);
  const splitCount = m.get('split.count');
  if (typeof splitCount === 'number' && splitCount > 1) {
    throw new ModelFileError(file, `is one of ${splitCount} split GGUF files; merge them first (llama-gguf-split --merge)`);
  }

  const a = archName;
  const hiddenSize = m.positiveInt(`${a}.embedding_length`);
  const numHeads = m.positiveInt(`${a}.attention.head_count`);
  const numKvHeads = m.positiveInt(`${a}.attention.head_count_kv`, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ModelFileError(file, `head_count ${numHeads} is not a multiple of head_count_kv ${numKvHeads}`);
  }
  const defaultHeadDim = hiddenSize % numHeads === 0 ? hiddenSize / numHeads : undefined;
  const ropeDims = m.get(`${a}.rope.dimension_count`);
  // key_length is explicit; rope.dimension_count equals the head size whenever rotary is full (checked below).
  const headDim =
    m.get(`${a}.attention.key_length`) !== undefined
      ? m.positiveInt(`${a}.attention.key_length`)
      : m.positiveInt(`${a}.rope.dimension_count`, defaultHeadDim);
  const valueLength = m.get(`${a}.attention.value_length`);
  if (valueLength !== undefined && valueLength !== headDim) {
    throw new ModelFileError(file, `attention.value_length ${String(valueLength)} differs from key_length ${headDim}, which edge-node does not support`);
  }
  if (ropeDims !== undefined && ropeDims !== headDim) {
    throw new ModelFileError(file, `rope.dimension_count ${String(ropeDims)} is a partial rotary embedding (head dim ${headDim}), which edge-node does not support`);
  }
  const scalingType = m.get(`${a}.rope.scaling.type`);
  const scalingFactor = m.get(`${a}.rope.scaling.factor`) ?? m.get(`${a}.rope.scale_linear`);
  if ((scalingType !== undefined && scalingType !== 'none') || (typeof scalingFactor === 'number' && scalingFactor !== 1)) {
    throw new ModelFileError(file, `RoPE scaling ${String(scalingType ?? 'linear')} (factor ${String(scalingFactor)}) is not supported (supported: llama3, or none)`);
  }

  const tensorNames = new Set(header.tensors.map((t) => t.name));
  const embd = header.tensors.find((t) => t.name === 'token_embd.weight');
  const tokens = m.get('tokenizer.ggml.tokens');
  const vocabSize = embd !== undefined ? embd.ne[1] ?? 1 : Array.isArray(tokens) ? tokens.length : m.positiveInt(`${a}.vocab_size`);
  if (Array.isArray(tokens) && tokens.length > vocabSize) {
    // The tokenizer could emit ids the embedding has no row for.
    throw new ModelFileError(file, `tokenizer.ggml.tokens has ${tokens.length} entries but token_embd.weight has only ${vocabSize} rows`);
  }

  const eosTokenIds: number[] = [];
  for (const key of ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
    // EOT/EOM also end a turn in llama.cpp, so generation stops on any of them.
    const id = m.tokenId(key);
    if (id !== null && !eosTokenIds.includes(id)) eosTokenIds.push(id);
  }
  const addBos = m.get('tokenizer.ggml.add_bos_token');
  const name = m.get('general.name');

  return {
    architecture,
    name: typeof name === 'string' && name.length > 0 ? name : basename(file, '.gguf'),
    hiddenSize,
    intermediateSize: m.positiveInt(`${a}.feed_forward_length`),
    numLayers: m.positiveInt(`${a}.block_count`),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    contextLength: m.positiveInt(`${a}.context_length`),
    rmsNormEps: m.positiveNumber(`${a}.attention.layer_norm_rms_epsilon`, 1e-5),
    ropeTheta: m.positiveNumber(`${a}.rope.freq_base`, 10000),
    ropeScaling: null,
    tiedEmbeddings: !tensorNames.has('output.weight'),
    attentionBias: architecture === 'qwen2' || tensorNames.has('blk.0.attn_q.bias'),
    bosTokenId: m.tokenId('tokenizer.ggml.bos_token_id'),
    eosTokenIds,
    addBosToken: typeof addBos === 'boolean' ? addBos : architecture === 'llama',
  };
}
