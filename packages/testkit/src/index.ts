// @edge-node/testkit: what tests, benchmarks and `edge-node bench --model synthetic:PRESET` need to make model files.
export { generateSyntheticModel, type SyntheticDType, type SyntheticFormat, type SyntheticModel, type SyntheticModelOptions } from './synthetic-model.js';
export { SYNTHETIC_PRESETS, SYNTHETIC_PRESET_NAMES, isSyntheticPresetName, type SyntheticPresetName } from './synthetic-presets.js';
export { gguf, writeGguf, type GgufMetadataValue, type GgufTensorSource, type GgufWriteOptions, type GgufWriteResult } from './gguf-writer.js';
export { SyntheticModelError, TensorWriteError } from './synth-errors.js';
