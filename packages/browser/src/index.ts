export { startBrowserNode, type BrowserNode, type BrowserNodeOptions } from './browser-node.js';
export type { BrowserNodeStatus } from './browser-status.js';
export { IdbTensorStore } from './idb-tensor-store.js';
export { JoinRefusedError } from './join-errors.js';
export { StageMeter } from './stage-meter.js';
export { clusterKeyFromFragment, clusterKeyFromText } from './cluster-key-text.js';
export { pickWebSocketAddress } from './ws-address.js';
