// @edge-node/node's public surface: what the CLI, the test kit, scripts and embedders import, by name. Internals stay
// reachable by path for the package's own tests; the browser's entry point is ./browser-exports.ts; the settings and
// defaults a command line needs without loading the runtime are in ./settings-exports.ts.
export { type BenchInfo, type BenchPromptKind, benchPromptIds, type BenchResponse, type BenchRun } from './api/bench-route.js';
export { type DeviceProfile, measureDevice } from './cluster/device-profile.js';
export type { BenchHop } from './engine/bench-probe.js';
export type { EngineBackend, EngineOptions } from './engine/engine-options.js';
export { generate } from './engine/generate.js';
export type { KvCacheType } from './engine/kv-cache.js';
export { LocalModel } from './engine/local-model.js';
export type { PrefixCacheReport } from './engine/prefix-cache.js';
export { GREEDY, type SamplingParams } from './engine/sampler.js';
export { checkTfjsWeightTypes } from './engine/tfjs-weight-types.js';
export type { ExecutionRequest, TokenExecutor } from './engine/token-executor.js';
export { DEFAULT_HUB_CHAT_MODEL, DEMO_MODEL_PATH } from './model/demo-model.js';
export { f16ToF32, f32ToF16 } from './model/half-float.js';
export { DEFAULT_HUB_ENDPOINT, downloadHubModel, type DownloadProgress, hubOptionsFromEnv } from './model/hub-download.js';
export { formatHubModelRef, parseHubModelRef } from './model/hub-model-ref.js';
export { llama3RopeDivisors } from './model/llama3-rope-factors.js';
export { readLoraAdapter, writeLoraAdapter, type LoraFileType } from './model/lora-adapter-file.js';
export { LORA_PROJECTIONS, type LoraAdapter, type LoraPair, loraScale, loraTargetName } from './model/lora-adapter.js';
export type { ModelConfig, RopeScalingLlama3 } from './model/model-config.js';
export type { RopeLayout } from './model/model-file.js';
export { type HubSettings, resolveModelSource } from './model/model-source.js';
export { openModel } from './model/open-model.js';
export { storedBytesPerWeight } from './model/stored-bytes-per-weight.js';
export { generateClusterKey, parseClusterKey, readClusterKeyFile, writeClusterKeyFile } from './network/cluster-key.js';
export { createEdgeHost } from './network/edge-host.js';
export { createConsoleLogger, LOG_LEVELS, type LogLevel, silentLogger } from './network/node-logger.js';
export { type EdgeNode, type EdgeNodeOptions, startEdgeNode } from './node-runtime.js';
export type { ClusterStatus, MemberStatus } from './node-status.js';
export { modelShapeOf } from './pipeline/cluster-plan.js';
export { type FinetuneOptions, type FinetuneProgress, type FinetuneReport, runFinetune } from './training/finetune-job.js';
export type { FinetuneJobRequest } from './training/finetune-request.js';
