import type { KernelTypeName } from '@edge-node/kernels';
import type { ModelConfig } from './model-config.js';

/**
 * Canonical tensor names (llama.cpp's GGUF names). Readers map their format's names onto these.
 * Global: `token_embd.weight`, `output_norm.weight`, `output.weight` (absent when tied).
 * Per layer i: `blk.{i}.attn_norm.weight`, `blk.{i}.attn_q.weight`, `blk.{i}.attn_k.weight`,
 * `blk.{i}.attn_v.weight`, `blk.{i}.attn_output.weight`, optional `blk.{i}.attn_{q,k,v}.bias`,
 * `blk.{i}.ffn_norm.weight`, `blk.{i}.ffn_gate.weight`, `blk.{i}.ffn_up.weight`, `blk.{i}.ffn_down.weight`.
 */
export type TensorName = string;

/** Storage types a model's tensors may have: the ones the kernels multiply directly. */
export type StoredDType = KernelTypeName;

export interface TensorInfo {
  name: TensorName;
  /**
   * Logical shape, outermost first, as PyTorch writes it: a linear layer's weight is [out, in]
   * (GGUF's ne[] reversed). Vectors are [n].
   */
  shape: number[];
  dtype: StoredDType;
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Absolute byte offset of the tensor's data in that file. */
  offset: number;
  byteLength: number;
}

/**
 * How Q/K rows are ordered for RoPE in the file. 'interleaved': pairs (x[2i], x[2i+1]) as in GGUF llama and
 * llama2.c; 'half': pairs (x[i], x[i+d/2]) as in Hugging Face (rotate_half) and GGUF qwen2 (NEOX).
 */
export type RopeLayout = 'interleaved' | 'half';

/** Where a tokenizer can be built from. */
export type TokenizerSource =
  | { kind: 'tokenizer-json'; path: string; configPath: string | null }
  | { kind: 'gguf'; metadata: ReadonlyMap<string, unknown> };

/**
 * An opened model: its architecture and an index of its tensors. No weight bytes are read until readTensor
 * is called, so a pipeline stage can read only its own layers.
 */
export interface ModelFile {
  /** The path the user gave (file or folder). */
  path: string;
  format: 'gguf' | 'safetensors';
  config: ModelConfig;
  ropeLayout: RopeLayout;
  tensors: ReadonlyMap<TensorName, TensorInfo>;
  tokenizer: TokenizerSource;
  /** Jinja chat template, when the model ships one. */
  chatTemplate: string | null;
  /** Reads one tensor's bytes (and only those) and dequantises them to float32, row-major in `shape`. */
  readTensor(name: TensorName): Promise<Float32Array>;
  /**
   * Reads one tensor's stored bytes as they are (its file encoding, nothing converted) into `into` — for example
   * straight into a kernel arena — or into a new array. `into` must be exactly the tensor's byteLength.
   */
  readTensorBytes(name: TensorName, into?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}
