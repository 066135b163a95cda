import type { Architecture, ModelConfig, RopeScalingLlama3 } from './model-config.js';
import { ModelFileError, UnsupportedArchitectureError } from './model-errors.js';

/** Hugging Face model_type → edge-node architecture (Mistral is the Llama forward pass). */
const MODEL_TYPES: ReadonlyMap<string, Architecture> = new Map([
  ['llama', 'llama'],
  ['mistral', 'llama'],
  ['qwen2', 'qwen2'],
]);

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads config fields with errors that name the file and the field. */
class ConfigFields {
  constructor(
    private readonly json: Json,
    private readonly file: string,
  ) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  positiveInt(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new ModelFileError(this.file, v === undefined ? `missing "${key}"` : `"${key}" is ${JSON.stringify(v)}, expected a positive integer`);
    }
    return v;
  }

  positiveNumber(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new ModelFileError(this.file, v === undefined ? `missing "${key}"` : `"${key}" is ${JSON.stringify(v)}, expected a positive number`);
    }
    return v;
  }

  optionalTokenId(key: string): number | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new ModelFileError(this.file, `"${key}" is ${JSON.stringify(v)}, expected a token id`);
    }
    return v;
  }

  tokenIds(key: string): number[] {
    const v = this.json[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        throw new ModelFileError(this.file, `"${key}" is ${JSON.stringify(v)}, expected a token id or a list of them`);
      }
    }
    return list as number[];
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.json[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ModelFileError(this.file, `"${key}" is ${JSON.stringify(v)}, expected true or false`);
    return v;
  }
}

function parseRopeScaling(raw: unknown, file: string): RopeScalingLlama3 | null {
  if (raw === undefined || raw === null) return null;
  if (!isRecord(raw)) throw new ModelFileError(file, `"rope_scaling" is ${JSON.stringify(raw)}, expected an object or null`);
  const kind = raw.rope_type ?? raw.type;
  if (kind === 'default') return null;
  if (kind !== 'llama3') {
    throw new ModelFileError(file, `rope_scaling type ${JSON.stringify(kind)} is not supported (supported: llama3, or none)`);
  }
  const f = new ConfigFields(raw, `${file} rope_scaling`);
  return {
    type: 'llama3',
    factor: f.positiveNumber('factor'),
    lowFreqFactor: f.positiveNumber('low_freq_factor'),
    highFreqFactor: f.positiveNumber('high_freq_factor'),
    originalMaxPositionEmbeddings: f.positiveInt('original_max_position_embeddings'),
  };
}

/**
 * Builds a ModelConfig from a Hugging Face config.json (already parsed) and, if the folder has one,
 * tokenizer_config.json. `file` names config.json in errors; `name` is the model's display name.
 */
export function modelConfigFromHf(
  config: unknown,
  tokenizerConfig: unknown,
  file: string,
  name: string,
): ModelConfig {
  if (!isRecord(config)) throw new ModelFileError(file, 'config.json is not a JSON object');
  const modelType = config.model_type;
  if (typeof modelType !== 'string') throw new ModelFileError(file, 'missing "model_type"');
  const architecture = MODEL_TYPES.get(modelType);
  if (architecture === undefined) throw new UnsupportedArchitectureError(file, modelType);

  const f = new ConfigFields(config, file);
  const hiddenSize = f.positiveInt('hidden_size');
  const numHeads = f.positiveInt('num_attention_heads');
  const numKvHeads = f.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ModelFileError(file, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  let headDim: number;
  if (f.has('head_dim')) headDim = f.positiveInt('head_dim');
  else if (hiddenSize % numHeads === 0) headDim = hiddenSize / numHeads;
  else throw new ModelFileError(file, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} and no head_dim is given`);

  const tok = isRecord(tokenizerConfig) ? tokenizerConfig : {};
  const addBos = tok.add_bos_token;

  return {
    architecture,
    name,
    hiddenSize,
    intermediateSize: f.positiveInt('intermediate_size'),
    numLayers: f.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: f.positiveInt('vocab_size'),
    contextLength: f.positiveInt('max_position_embeddings'),
    rmsNormEps: f.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta: f.positiveNumber('rope_theta', 10000),
    ropeScaling: parseRopeScaling(config.rope_scaling, file),
    // transformers' Llama/Mistral/Qwen2 configs default to untied.
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    attentionBias: architecture === 'qwen2' || f.bool('attention_bias', false),
    bosTokenId: f.optionalTokenId('bos_token_id'),
    eosTokenIds: f.tokenIds('eos_token_id'),
    addBosToken: typeof addBos === 'boolean' ? addBos : architecture === 'llama',
  };
}
