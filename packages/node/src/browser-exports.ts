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
export type { ClusterMember } from './cluster/membership.js';
export { ClusterNode, servedContextLength, type ClusterNodeComponents, type ClusterNodeOptions, type ServeLimits, type ServeSettings, type Startable } from './cluster-node.js';
export type { PeerModelFile, WeightsFetchStats } from './weights/peer-model-file.js';
export type { TensorStore } from './weights/tensor-store.js';
export { modelFromPeers } from './weights/model-from-peers.js';
export { loadTokenizer } from './tokenizer/load-tokenizer.js';
export { kernelBackend } from './engine/kernel-backend.js';
