import type { GgufValue } from '../model/gguf-reader.js';
import type { ModelConfig } from '../model/model-config.js';
import type { RopeLayout, StoredDType } from '../model/model-file.js';
import { isStoredDType, storedByteLength } from '../model/tensor-dequant.js';
import { WeightsProtocolError } from './weights-errors.js';

/**
 * `/edge-node/weights/1.0.0`: a node without the model asks a peer that has it for a manifest (architecture,
 * tokenizer, tensor list with sizes and SHA-256s), then for single tensors' stored bytes, sent as `begin`, `chunk`s
 * and `end` so that no frame comes near the 64 MiB frame limit. Requests on one stream are answered in order.
 */
export const WEIGHT_CHUNK_BYTES = 4 * 1024 * 1024;
const MAX_NAME_LENGTH = 256;
const SHA256_RE = /^[0-9a-f]{64}$/;
const NAME_RE = /^[A-Za-z0-9_.-]+$/;

export interface TensorEntry {
  name: string;
  shape: number[];
  dtype: StoredDType;
  /** Stored (possibly quantised) bytes. */
  byteLength: number;
  /** SHA-256 of the stored bytes, lower-case hex. */
  sha256: string;
}

/** GGUF metadata values survive msgpack except bigint, which travels as `{ big: '123' }`. */
export type WireGgufValue = number | boolean | string | { big: string } | WireGgufValue[];

export type WireTokenizer =
  | { kind: 'gguf'; metadata: [string, WireGgufValue][] }
  | { kind: 'tokenizer-json'; tokenizerJson: string; tokenizerConfigJson: string | null };

export interface WeightsManifest {
  version: 1;
  format: 'gguf' | 'safetensors';
  config: ModelConfig;
  ropeLayout: RopeLayout;
  chatTemplate: string | null;
  tokenizer: WireTokenizer;
  tensors: TensorEntry[];
  /**
   * The id clients name the model by on the serving node (its file's name, e.g. "stories260K"), so that a node
   * serving the model from peers answers to the same id. Absent from older nodes: then config.name is used.
   */
  modelId?: string;
}

export type WeightsRequest = { t: 'manifest' } | { t: 'tensor'; name: string };

export type WeightsReply =
  | { t: 'manifest'; manifest: WeightsManifest }
  | { t: 'begin'; name: string; byteLength: number; sha256: string }
  | { t: 'chunk'; data: Uint8Array }
  | { t: 'end' }
  | { t: 'error'; message: string };

export function toWireGguf(value: GgufValue): WireGgufValue {
  if (typeof value === 'bigint') return { big: value.toString() };
  if (Array.isArray(value)) return value.map(toWireGguf);
  return value;
}

export function fromWireGguf(value: unknown, key: string): GgufValue {
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map((v) => fromWireGguf(v, key));
  if (isRecord(value) && typeof value.big === 'string' && /^-?\d+$/.test(value.big)) return BigInt(value.big);
  throw new WeightsProtocolError(`manifest: tokenizer metadata ${key} has a value of an unexpected type`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a request from a peer; anything else is garbage and ends the stream. */
export function parseWeightsRequest(raw: unknown): WeightsRequest {
  if (isRecord(raw) && raw.t === 'manifest') return { t: 'manifest' };
  if (isRecord(raw) && raw.t === 'tensor' && typeof raw.name === 'string' && raw.name.length <= MAX_NAME_LENGTH && NAME_RE.test(raw.name)) {
    return { t: 'tensor', name: raw.name };
  }
  throw new WeightsProtocolError('malformed weights request');
}

const POSITIVE_INT_FIELDS = ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'contextLength'] as const;

function checkConfig(raw: unknown): ModelConfig {
  if (!isRecord(raw)) throw new WeightsProtocolError('manifest: config is not an object');
  for (const f of POSITIVE_INT_FIELDS) {
    const v = raw[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 1e9) throw new WeightsProtocolError(`manifest: config.${f} is not a positive integer`);
  }
  if (raw.architecture !== 'llama' && raw.architecture !== 'qwen2') throw new WeightsProtocolError('manifest: config.architecture is not supported');
  if (typeof raw.name !== 'string') throw new WeightsProtocolError('manifest: config.name is not a string');
  for (const f of ['rmsNormEps', 'ropeTheta'] as const) {
    if (typeof raw[f] !== 'number' || !Number.isFinite(raw[f]) || (raw[f] as number) <= 0) throw new WeightsProtocolError(`manifest: config.${f} is not a positive number`);
  }
  for (const f of ['tiedEmbeddings', 'attentionBias', 'addBosToken'] as const) {
    if (typeof raw[f] !== 'boolean') throw new WeightsProtocolError(`manifest: config.${f} is not a boolean`);
  }
  if (!Array.isArray(raw.eosTokenIds) || raw.eosTokenIds.some((x) => !Number.isInteger(x))) throw new WeightsProtocolError('manifest: config.eosTokenIds is not a list of token ids');
  if (raw.bosTokenId !== null && !Number.isInteger(raw.bosTokenId)) throw new WeightsProtocolError('manifest: config.bosTokenId is not a token id');
  if (raw.ropeScaling !== null && !isRecord(raw.ropeScaling)) throw new WeightsProtocolError('manifest: config.ropeScaling is malformed');
  return raw as unknown as ModelConfig;
}

function checkTensor(raw: unknown): TensorEntry {
  if (!isRecord(raw) || typeof raw.name !== 'string' || raw.name.length > MAX_NAME_LENGTH || !NAME_RE.test(raw.name)) {
    throw new WeightsProtocolError('manifest: a tensor entry has no valid name');
  }
  const name = raw.name;
  const shape = raw.shape;
  if (!Array.isArray(shape) || shape.length === 0 || shape.length > 4 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new WeightsProtocolError(`manifest: tensor ${name} has an invalid shape`);
  }
  if (typeof raw.dtype !== 'string' || !isStoredDType(raw.dtype)) throw new WeightsProtocolError(`manifest: tensor ${name} has an unsupported dtype`);
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = storedByteLength(raw.dtype, elements);
  if (expected === null || raw.byteLength !== expected) {
    throw new WeightsProtocolError(`manifest: tensor ${name} claims ${String(raw.byteLength)} bytes, but ${raw.dtype} [${shape.join(', ')}] takes ${expected}`);
  }
  if (typeof raw.sha256 !== 'string' || !SHA256_RE.test(raw.sha256)) throw new WeightsProtocolError(`manifest: tensor ${name} has no valid SHA-256`);
  return { name, shape: shape as number[], dtype: raw.dtype, byteLength: expected, sha256: raw.sha256 };
}

function checkTokenizer(raw: unknown): WireTokenizer {
  if (isRecord(raw) && raw.kind === 'gguf' && Array.isArray(raw.metadata)) {
    for (const e of raw.metadata) {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string') throw new WeightsProtocolError('manifest: malformed tokenizer metadata');
    }
    return { kind: 'gguf', metadata: raw.metadata as [string, WireGgufValue][] };
  }
  if (isRecord(raw) && raw.kind === 'tokenizer-json' && typeof raw.tokenizerJson === 'string' && (raw.tokenizerConfigJson === null || typeof raw.tokenizerConfigJson === 'string')) {
    return { kind: 'tokenizer-json', tokenizerJson: raw.tokenizerJson, tokenizerConfigJson: raw.tokenizerConfigJson };
  }
  throw new WeightsProtocolError('manifest: malformed tokenizer');
}

/** Checks a manifest from a peer field by field (the tensor shapes are checked against the config afterwards). */
export function parseWeightsManifest(raw: unknown): WeightsManifest {
  if (!isRecord(raw) || raw.version !== 1) throw new WeightsProtocolError('manifest: unknown version');
  if (raw.format !== 'gguf' && raw.format !== 'safetensors') throw new WeightsProtocolError('manifest: unknown format');
  if (raw.ropeLayout !== 'interleaved' && raw.ropeLayout !== 'half') throw new WeightsProtocolError('manifest: unknown RoPE layout');
  if (raw.chatTemplate !== null && typeof raw.chatTemplate !== 'string') throw new WeightsProtocolError('manifest: chat template is not a string');
  if (!Array.isArray(raw.tensors) || raw.tensors.length === 0 || raw.tensors.length > 100_000) throw new WeightsProtocolError('manifest: no tensor list');
  const tensors = raw.tensors.map(checkTensor);
  if (new Set(tensors.map((t) => t.name)).size !== tensors.length) throw new WeightsProtocolError('manifest: a tensor is listed twice');
  const modelId = raw.modelId;
  // It becomes a path segment and an API id: a plain name only.
  if (modelId !== undefined && (typeof modelId !== 'string' || !/^[\w.@+-]{1,200}$/.test(modelId))) throw new WeightsProtocolError('manifest: modelId is not a plain model name');
  return {
    ...(modelId !== undefined ? { modelId } : {}),
    version: 1,
    format: raw.format,
    config: checkConfig(raw.config),
    ropeLayout: raw.ropeLayout,
    chatTemplate: raw.chatTemplate,
    tokenizer: checkTokenizer(raw.tokenizer),
    tensors,
  };
}
