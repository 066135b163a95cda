import { InvalidModelConfigError } from './errors.js';

/** What the planner needs to know about a decoder-only transformer: sizes, not weights. */
export interface ModelShape {
  name?: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** The output head reuses the token embedding matrix. */
  tiedEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2). */
  attentionBias: boolean;
  /** Bytes per weight at the dtype it will run in (4 = f32, 2 = f16, 1.0625 = Q8_0, 0.5625 = Q4_0). */
  bytesPerWeight: number;
  /** Bytes per activation value (and per KV value unless bytesPerKvValue says otherwise): 4 by default (float32). */
  bytesPerActivation?: number;
  /** Bytes per cached key or value: 4 = F32, 2 = F16 (the kernels' default cache), 1.0625 = Q8_0 (34 bytes per 32). */
  bytesPerKvValue?: number;
}

function num(o: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const k of keys) {
    const v = o[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

/**
 * Reads a Hugging Face config.json object (llama / mistral / qwen2 key names). Pure: the caller reads the file.
 * `bytesPerWeight` defaults to 4 because the runtime dequantises weights to float32.
 */
export function modelShapeFromHfConfig(json: unknown, options: { bytesPerWeight?: number; name?: string } = {}): ModelShape {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidModelConfigError('the model config must be a JSON object (a Hugging Face config.json)');
  }
  const o = json as Record<string, unknown>;
  // Some configs nest the language model (e.g. multimodal wrappers).
  if (num(o, 'hidden_size') === undefined && typeof o.text_config === 'object' && o.text_config !== null) {
    return modelShapeFromHfConfig(o.text_config, options);
  }
  const hiddenSize = num(o, 'hidden_size', 'n_embd', 'd_model');
  const intermediateSize = num(o, 'intermediate_size', 'n_inner', 'ffn_dim');
  const numLayers = num(o, 'num_hidden_layers', 'n_layer', 'num_layers');
  const numHeads = num(o, 'num_attention_heads', 'n_head');
  const vocabSize = num(o, 'vocab_size');
  const missing = Object.entries({ hidden_size: hiddenSize, intermediate_size: intermediateSize, num_hidden_layers: numLayers, num_attention_heads: numHeads, vocab_size: vocabSize })
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length > 0) {
    throw new InvalidModelConfigError(`the model config lacks ${missing.join(', ')} (expected llama/mistral/qwen2 config.json keys)`);
  }
  const numKvHeads = num(o, 'num_key_value_heads') ?? numHeads!;
  const headDim = num(o, 'head_dim') ?? hiddenSize! / numHeads!;
  const modelType = typeof o.model_type === 'string' ? o.model_type : '';
  const attentionBias = typeof o.attention_bias === 'boolean' ? o.attention_bias : modelType === 'qwen2';
  const tiedEmbeddings = typeof o.tie_word_embeddings === 'boolean' ? o.tie_word_embeddings : false;
  const shape: ModelShape = {
    hiddenSize: hiddenSize!,
    intermediateSize: intermediateSize!,
    numLayers: numLayers!,
    numHeads: numHeads!,
    numKvHeads,
    headDim,
    vocabSize: vocabSize!,
    tiedEmbeddings,
    attentionBias,
    bytesPerWeight: options.bytesPerWeight ?? 4,
  };
  const name = options.name ?? (typeof o._name_or_path === 'string' ? o._name_or_path : undefined);
  if (name !== undefined) shape.name = name;
  validateModelShape(shape);
  return shape;
}

export function validateModelShape(s: ModelShape): void {
  const ints: (keyof ModelShape)[] = ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize'];
  for (const k of ints) {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new InvalidModelConfigError(`model ${k} must be a positive integer, got ${String(v)}`);
    }
  }
  if (!(s.bytesPerWeight > 0)) throw new InvalidModelConfigError(`bytesPerWeight must be > 0, got ${s.bytesPerWeight}`);
  if (s.bytesPerActivation !== undefined && !(s.bytesPerActivation > 0)) {
    throw new InvalidModelConfigError(`bytesPerActivation must be > 0, got ${s.bytesPerActivation}`);
  }
  if (s.bytesPerKvValue !== undefined && !(s.bytesPerKvValue > 0)) {
    throw new InvalidModelConfigError(`bytesPerKvValue must be > 0, got ${s.bytesPerKvValue}`);
  }
}
