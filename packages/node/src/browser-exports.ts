/**
 * What a browser node (packages/browser) builds on: the parts of the runtime that run in a page. Nothing here may
 * import Node-only modules beyond what the browser bundle injects (events, crypto hashes, path joins; see
 * packages/browser/src/shims); the HTTP API, model files on disk and TCP stay out.
 */
export { wrapLibp2p, type EdgeHost, type EdgeHostOptions } from './network/edge-host.js';
export { DEFAULT_MAX_FRAME_BYTES } from './network/frame-codec.js';
export type { NodeLogger, LogLevel } from './network/node-logger.js';
export { parseClusterKey } from './network/cluster-key.js';
export { measureDevice, type DeviceProfile } from './cluster/device-profile.js';
export { Membership, type ClusterMember } from './cluster/membership.js';
export { LinkMonitor } from './cluster/link-monitor.js';
export { PeerModelFile, type WeightsFetchStats } from './weights/peer-model-file.js';
export type { TensorStore } from './weights/tensor-store.js';
export { weightsSources, waitForWeightsSources } from './weights/weights-sources.js';
export { loadTokenizer } from './tokenizer/load-tokenizer.js';
export { ActivationRouter } from './pipeline/activation-router.js';
export { ClusterPipeline } from './pipeline/cluster-pipeline.js';
export { frameLimits } from './pipeline/frame-limits.js';
export { kernelBackend } from './engine/kernel-backend.js';
export type { ActFrame, ReleaseFrame } from './pipeline/activation-frame.js';
