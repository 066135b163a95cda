// @edge-node/node/settings: the settings a command line parses and the defaults its help shows, without the runtime.
// The package's index loads libp2p, the HTTP server and the model readers (~1 s of CPU); `edge-node <command> --help`
// and a plan from a config file need none of that, so they import this entry and the commands load the index lazily.
export { DEFAULT_API_PORT, DEFAULT_QUEUE_LENGTH } from './api/api-defaults.js';
export { checkEngineOptions, type EngineBackend, type EngineOptions, parseEngineBackend, parseKvCacheType } from './engine/engine-options.js';
export { checkKvCacheType, kvBytesPerValue, type KvCacheType } from './engine/kv-cache.js';
export { DEFAULT_SAMPLING, GREEDY, type SamplingParams } from './engine/sampler.js';
