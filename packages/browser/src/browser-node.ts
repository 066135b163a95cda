import { createKernelRuntime } from '@edge-node/kernels';
import { ClusterNode, kernelBackend, loadTokenizer, measureDevice, modelFromPeers, servedContextLength, type DeviceProfile, type EdgeHost, type PeerModelFile, type WeightsFetchStats } from '@edge-node/node/browser';
import { joinCluster, type BrowserHostOptions } from './browser-host.js';
import { browserNodeStatus, type BrowserNodeStatus, type BrowserNodeTimings } from './browser-status.js';
import { IdbTensorStore } from './idb-tensor-store.js';
import { StageMeter } from './stage-meter.js';

export interface BrowserNodeOptions extends BrowserHostOptions {
  /** Memory this tab offers for layers and KV caches. */
  memoryBudgetBytes: number;
  /** Compute threads (default: navigator.hardwareConcurrency where the page is cross-origin isolated, else 1). */
  threads?: number;
  /** Context per request in tokens (default: the model's, at most 4096) and requests served at once (default 4). */
  contextLength?: number;
  concurrency?: number;
  /** The IndexedDB database that caches tensors (one per cluster model is fine: entries are content-addressed). */
  storeName?: string;
  onWeights?: (stats: WeightsFetchStats & { tensor: string }) => void;
}

export interface BrowserNode {
  readonly host: EdgeHost;
  readonly profile: DeviceProfile;
  status(): Promise<BrowserNodeStatus>;
  /** Leaves the cluster: stops serving, says goodbye to the peers, closes the connections. */
  leave(): Promise<void>;
}

/**
 * Starts a browser tab as a node of the cluster, composed as a Node node is (ClusterNode) from the page's parts: the
 * kernels (Web Workers where the page is cross-origin isolated) measure the device, libp2p dials the serving node over
 * WebSockets, and the pipeline serves whatever layers the plan gives this tab, fetching only their tensors from peers
 * (verified by hash, kept in IndexedDB). Its stage's rows and first layer load reach the page as events.
 */
export async function startBrowserNode(options: BrowserNodeOptions): Promise<BrowserNode> {
  const t0 = performance.now();
  const { log } = options;
  const runtime = await createKernelRuntime({ threads: options.threads, workerUrl: new URL('./kernel-worker.js', import.meta.url) });
  const compute = kernelBackend(runtime, { ownsRuntime: true });
  const profile = await measureDevice({ compute, runtimeKind: 'browser', memoryBudgetBytes: options.memoryBudgetBytes });
  const timings: BrowserNodeTimings = { measuredMs: performance.now() - t0, joinedMs: 0, manifestMs: null, layersLoadedMs: null, layersLoadMs: null };
  log.info(`device: wasm ${profile.isa} kernels on ${profile.threads} thread${profile.threads === 1 ? '' : 's'}, decode ${profile.gflopsDecode} GFLOP/s, prefill ${profile.gflopsPrefill} GFLOP/s`);
  const host = await joinCluster(options).catch(async (err: Error) => {
    await compute.close();
    throw err;
  });
  timings.joinedMs = performance.now() - t0;
  const cluster = new ClusterNode({ host, compute, profile, log }, { name: options.name });
  await cluster.start();
  await host.start();
  log.info(`joined the cluster through ${options.bootstrap} as ${host.peerId}`);

  const store = await IdbTensorStore.open(options.storeName);
  const meter = new StageMeter();
  const stopped = new AbortController();
  let model: PeerModelFile | null = null;
  const serving = (async () => {
    model = await modelFromPeers(host, cluster.membership, 'browser', log, { signal: stopped.signal, store, ...(options.onWeights ? { onProgress: options.onWeights } : {}) });
    timings.manifestMs = performance.now() - t0;
    const limits = { contextLength: servedContextLength(model.config, options.contextLength), concurrency: options.concurrency ?? 4 };
    await cluster.serve(model, await loadTokenizer(model.tokenizer), limits, {
      onStageStep: (rows, _requests, ms) => meter.add(rows, ms),
      // The first layers the plan gives this tab (the page reports when, and how long they took).
      onLayersLoaded: (_range, ms) => {
        if (timings.layersLoadedMs === null) [timings.layersLoadedMs, timings.layersLoadMs] = [performance.now() - t0, ms];
      },
    });
    log.info(`serving model ${model.config.name}: waiting for the plan to give this tab layers`);
  })();
  serving.catch((err: Error) => {
    if (!stopped.signal.aborted) log.error(`cannot serve: ${err.message}`);
  });

  return {
    host,
    profile,
    status: () => browserNodeStatus({ cluster, profile, store, meter, model: () => model, timings }),
    async leave(): Promise<void> {
      stopped.abort();
      await serving.catch(() => {});
      await cluster.stop();
      await (model as PeerModelFile | null)?.close();
      await host.close();
      await compute.close();
      store.close();
    },
  };
}
