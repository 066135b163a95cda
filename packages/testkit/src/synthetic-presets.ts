import type { ModelConfig, RopeScalingLlama3 } from '@edge-node/node';

/**
 * Shapes of real models (from their published config.json) for random-weight stand-ins, plus `tiny-*`
 * variants of each architecture feature (GQA, Qwen2 biases, llama3 RoPE scaling, untied head) that run in
 * milliseconds. Token ids are placeholders: the embedded tokenizer sets bos/eos/addBos.
 */
export type SyntheticPresetName =
  | 'smollm2-135m'
  | 'qwen2.5-0.5b'
  | 'llama-300m'
  | 'llama-3.2-1b'
  | 'llama-3-8b'
  | 'llama-3.1-8b'
  | 'tinyllama-1.1b'
  | 'mistral-7b'
  | 'tiny-smollm2'
  | 'tiny-qwen2.5'
  | 'tiny-llama-3.2'
  | 'tiny-tinyllama'
  | 'tiny-mistral';

const base: Pick<ModelConfig, 'bosTokenId' | 'eosTokenIds' | 'addBosToken' | 'ropeScaling' | 'tiedEmbeddings' | 'attentionBias' | 'rmsNormEps'> = {
  bosTokenId: 1,
  eosTokenIds: [2],
  addBosToken: true,
  ropeScaling: null,
  tiedEmbeddings: true,
  attentionBias: false,
  rmsNormEps: 1e-5,
};

const llama32Scaling: RopeScalingLlama3 = {
  type: 'llama3',
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};

export const SYNTHETIC_PRESETS: Readonly<Record<SyntheticPresetName, ModelConfig>> = {
  'smollm2-135m': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-smollm2-135m',
    hiddenSize: 576,
    intermediateSize: 1536,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    headDim: 64,
    vocabSize: 49152,
    contextLength: 8192,
    ropeTheta: 100000,
  },
  'qwen2.5-0.5b': {
    ...base,
    architecture: 'qwen2',
    name: 'synthetic-qwen2.5-0.5b',
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    vocabSize: 151936,
    contextLength: 32768,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    attentionBias: true,
  },
  // Not a published model: the ~300M-parameter llama shape of issue 11's benchmark (hidden 1024, 16 layers).
  'llama-300m': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-llama-300m',
    hiddenSize: 1024,
    intermediateSize: 4096,
    numLayers: 16,
    numHeads: 16,
    numKvHeads: 8,
    headDim: 64,
    vocabSize: 32000,
    contextLength: 4096,
    ropeTheta: 10000,
  },
  'llama-3.2-1b': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-llama-3.2-1b',
    hiddenSize: 2048,
    intermediateSize: 8192,
    numLayers: 16,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 64,
    vocabSize: 128256,
    contextLength: 131072,
    ropeTheta: 500000,
    ropeScaling: { ...llama32Scaling },
  },
  'llama-3-8b': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-llama-3-8b',
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    vocabSize: 128256,
    contextLength: 8192,
    ropeTheta: 500000,
    tiedEmbeddings: false,
  },
  'llama-3.1-8b': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-llama-3.1-8b',
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    vocabSize: 128256,
    contextLength: 131072,
    ropeTheta: 500000,
    ropeScaling: { ...llama32Scaling, factor: 8 },
    tiedEmbeddings: false,
  },
  'tinyllama-1.1b': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-tinyllama-1.1b',
    hiddenSize: 2048,
    intermediateSize: 5632,
    numLayers: 22,
    numHeads: 32,
    numKvHeads: 4,
    headDim: 64,
    vocabSize: 32000,
    contextLength: 2048,
    ropeTheta: 10000,
    tiedEmbeddings: false,
  },
  'mistral-7b': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-mistral-7b',
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    vocabSize: 32768,
    contextLength: 32768,
    ropeTheta: 1000000,
    tiedEmbeddings: false,
  },
  'tiny-smollm2': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-tiny-smollm2',
    hiddenSize: 96,
    intermediateSize: 256,
    numLayers: 4,
    numHeads: 6,
    numKvHeads: 2,
    headDim: 16,
    vocabSize: 512,
    contextLength: 8192,
    ropeTheta: 100000,
  },
  'tiny-qwen2.5': {
    ...base,
    architecture: 'qwen2',
    name: 'synthetic-tiny-qwen2.5',
    hiddenSize: 64,
    intermediateSize: 160,
    numLayers: 3,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    vocabSize: 512,
    contextLength: 32768,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    attentionBias: true,
  },
  'tiny-llama-3.2': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-tiny-llama-3.2',
    hiddenSize: 128,
    intermediateSize: 256,
    numLayers: 3,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 16,
    vocabSize: 512,
    contextLength: 131072,
    ropeTheta: 500000,
    ropeScaling: { ...llama32Scaling },
  },
  'tiny-tinyllama': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-tiny-tinyllama',
    hiddenSize: 64,
    intermediateSize: 192,
    numLayers: 3,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 8,
    vocabSize: 512,
    contextLength: 2048,
    ropeTheta: 10000,
    tiedEmbeddings: false,
  },
  'tiny-mistral': {
    ...base,
    architecture: 'llama',
    name: 'synthetic-tiny-mistral',
    hiddenSize: 128,
    intermediateSize: 448,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 1,
    headDim: 32,
    vocabSize: 512,
    contextLength: 32768,
    ropeTheta: 1000000,
    tiedEmbeddings: false,
  },
};

export const SYNTHETIC_PRESET_NAMES = Object.keys(SYNTHETIC_PRESETS) as SyntheticPresetName[];

export function isSyntheticPresetName(name: string): name is SyntheticPresetName {
  return Object.hasOwn(SYNTHETIC_PRESETS, name);
}
