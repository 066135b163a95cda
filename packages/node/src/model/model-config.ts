/**
 * The architecture of a decoder-only transformer, normalised from whatever file described it
 * (GGUF metadata or a Hugging Face config.json). Everything downstream — loader, engine,
 * partitioner profile — reads this one shape.
 */
export type Architecture = 'llama' | 'qwen2';

export interface RopeScalingLlama3 {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  architecture: Architecture;
  /** Human-readable name (general.name, or the folder name). */
  name: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Maximum context the model was trained for (tokens). */
  contextLength: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScalingLlama3 | null;
  /** Output head shares the token embedding matrix. */
  tiedEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2). */
  attentionBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Whether a raw prompt gets BOS prepended (tokenizer.ggml.add_bos_token / tokenizer_config add_bos_token). */
  addBosToken: boolean;
}
