import { join } from 'node:path';
import type { Membership } from '../cluster/membership.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PeerModelFile, type WeightsFetchStats } from './peer-model-file.js';
import type { TensorStore } from './tensor-store.js';
import { waitForWeightsSources, weightsSources } from './weights-sources.js';

/**
 * For a node started without a model: waits until a cluster member that has the model file serves weights, then
 * builds a PeerModelFile from its manifest. Tensors are fetched later, only for the layers the plan assigns here,
 * into `<dataDir>/weights` (reused on the next start), or into `store` (a browser tab's IndexedDB).
 */
export async function modelFromPeers(
  host: EdgeHost,
  membership: Membership,
  dataDir: string,
  log: NodeLogger,
  options: { signal?: AbortSignal; onProgress?: (s: WeightsFetchStats & { tensor: string }) => void; store?: TensorStore } = {},
): Promise<PeerModelFile> {
  const signal = options.signal ?? new AbortController().signal;
  if ((await weightsSources(host, membership)).length === 0) log.info('no model given: waiting for a peer that has the model (start one node with --model)');
  await waitForWeightsSources(host, membership, signal);
  return PeerModelFile.fromPeers({
    host,
    sources: () => weightsSources(host, membership),
    dir: join(dataDir, 'weights'),
    log,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.store ? { store: options.store } : {}),
  });
}
