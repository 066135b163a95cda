import { noise } from '@chainsafe/libp2p-noise';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { identify, identifyPush } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { createLibp2p } from 'libp2p';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import {
  ActivationRouter,
  ClusterPipeline,
  DEFAULT_MAX_FRAME_BYTES,
  LinkMonitor,
  Membership,
  PeerModelFile,
  kernelBackend,
  loadTokenizer,
  frameLimits,
  measureDevice,
  waitForWeightsSources,
  weightsSources,
  wrapLibp2p,
  type ActFrame,
  type DeviceProfile,
  type EdgeHost,
  type NodeLogger,
  type ReleaseFrame,
  type WeightsFetchStats,
} from '@edge-node/node/browser';
import { IdbTensorStore } from './idb-tensor-store.js';
import { JoinRefusedError } from './join-errors.js';
import { StageMeter } from './stage-meter.js';

export interface BrowserNodeOptions {
  /** Name in the cluster (the ring is ordered by name). */
  name: string;
  /** The serving node's WebSocket multiaddr, ending in /p2p/<id>. */
  bootstrap: string;
  /** The cluster key in pnet's text format, when the cluster has one. */
  clusterKey?: Uint8Array;
  /** Whether the serving node said the cluster has a key (GET /join/info): makes a refusal's message exact. */
  clusterKeyRequired?: boolean;
  /** Memory this tab offers for layers and KV caches. */
  memoryBudgetBytes: number;
  /** Compute threads (default: navigator.hardwareConcurrency where the page is cross-origin isolated, else 1). */
  threads?: number;
  log: NodeLogger;
  /** The IndexedDB database that caches tensors (one per cluster model is fine: entries are content-addressed). */
  storeName?: string;
  onWeights?: (stats: WeightsFetchStats & { tensor: string }) => void;
  signal?: AbortSignal;
}

export interface BrowserNodeStatus {
  peerId: string;
  profile: DeviceProfile;
  /** Layer ranges this tab holds, [start, end) each. */
  layers: { start: number; end: number }[];
  cachedBytes: number;
  cachedTensors: number;
  weights: WeightsFetchStats | null;
  /** Rows (tokens) per second this tab's stage computed over the last seconds, and in total. */
  tokensPerSecond: number;
  tokensTotal: number;
  /** Members this tab sees (itself first). */
  members: { peerId: string; name: string; runtime: string; layers: string }[];
  model: string | null;
  /** Milliseconds from start to: device measured, joined (first peer), model manifest received. */
  timings: {
    measuredMs: number;
    joinedMs: number;
    manifestMs: number | null;
    /** When the first layers the plan gave this tab were loaded (fetched or from IndexedDB), and how long that took. */
    layersLoadedMs: number | null;
    layersLoadMs: number | null;
  };
}

export interface BrowserNode {
  readonly host: EdgeHost;
  readonly profile: DeviceProfile;
  status(): Promise<BrowserNodeStatus>;
  /** Leaves the cluster: stops serving, says goodbye to the peers, closes the connections. */
  leave(): Promise<void>;
}

/**
 * Starts a browser tab as a node of the cluster: the same kernels measure the device, libp2p dials the serving node
 * over WebSockets (Noise, yamux, pnet when the cluster has a key), membership announces the profile with runtime
 * "browser", and the pipeline serves whatever layers the plan gives this tab, fetching only their tensors from peers
 * (verified by hash, kept in IndexedDB).
 */
export async function startBrowserNode(options: BrowserNodeOptions): Promise<BrowserNode> {
  const t0 = performance.now();
  const { log } = options;
  // Every core where the page is cross-origin isolated (shared memory: the kernels' Web Workers compute beside the
  // page); one thread over a plain memory otherwise (createKernelRuntime decides from crossOriginIsolated).
  const runtime: KernelRuntime = await createKernelRuntime({ threads: options.threads, workerUrl: new URL('./kernel-worker.js', import.meta.url) });
  const profile = await measureDevice({ runtime, runtimeKind: 'browser', memoryBudgetBytes: options.memoryBudgetBytes });
  const measuredMs = performance.now() - t0;
  log.info(`device: wasm ${profile.isa} kernels on ${profile.threads} thread${profile.threads === 1 ? '' : 's'}, decode ${profile.gflopsDecode} GFLOP/s, prefill ${profile.gflopsPrefill} GFLOP/s`);

  const maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  const libp2p = await createLibp2p({
    // A fresh identity per tab: two tabs of one browser are two nodes.
    privateKey: await generateKeyPair('Ed25519'),
    start: false,
    addresses: { listen: [] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ streamOptions: { maxReadBufferLength: maxFrameBytes + 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 } })],
    ...(options.clusterKey ? { connectionProtector: preSharedKey({ psk: options.clusterKey }) } : {}),
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping() },
    // In a page libp2p refuses private addresses by default; a home cluster lives on them.
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { dialTimeout: 5000 },
  });
  const host = wrapLibp2p(libp2p, {
    dataDir: '',
    listen: [],
    bootstrap: [options.bootstrap],
    mdns: false,
    name: options.name,
    logger: log,
    maxFrameBytes,
    canDial: (a) => /\/wss?(\/|$)/.test(a),
    ...(options.clusterKey ? { clusterKey: options.clusterKey } : {}),
  });

  // Dial once by hand first: a refusal (no key, wrong key) is an answer for the user, not something to retry.
  await libp2p.start();
  try {
    await host.dial(options.bootstrap, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    await Promise.resolve(libp2p.stop()).catch(() => {});
    await runtime.close();
    throw new JoinRefusedError(options.bootstrap, options.clusterKey !== undefined, options.clusterKeyRequired ?? true, err as Error);
  }
  const joinedMs = performance.now() - t0;

  const membership = new Membership(host, { name: options.name, profile }, log);
  const links = new LinkMonitor(host, membership, log);
  await membership.start();
  await links.start();
  await host.start();
  log.info(`joined the cluster through ${options.bootstrap} as ${host.peerId}`);

  const store = await IdbTensorStore.open(options.storeName);
  let model: PeerModelFile | null = null;
  let pipeline: ClusterPipeline | null = null;
  let manifestMs: number | null = null;
  let layersLoadedMs: number | null = null;
  let layersLoadMs: number | null = null;
  const meter = new StageMeter();
  const stopped = new AbortController();
  const started = (async () => {
    await waitForWeightsSources(host, membership, stopped.signal);
    model = await PeerModelFile.fromPeers({
      host,
      sources: () => weightsSources(host, membership),
      dir: 'browser',
      log,
      store,
      ...(options.onWeights ? { onProgress: options.onWeights } : {}),
    });
    manifestMs = performance.now() - t0;
    const tokenizer = await loadTokenizer(model.tokenizer);
    const contextLength = Math.min(4096, model.config.contextLength);
    pipeline = new ClusterPipeline({
      host,
      router: new ActivationRouter(host, frameLimits(model.config, maxFrameBytes, contextLength), log),
      membership,
      log,
      model,
      tokenizer,
      compute: kernelBackend(runtime),
      contextLength,
      concurrency: 4,
      maxFrameBytes,
    });
    // Count the rows this stage computes (for the page's tokens/s) without changing what the stage does.
    const worker = pipeline.worker;
    const handle = worker.handle.bind(worker);
    worker.handle = (frame: ActFrame | ReleaseFrame) => {
      const t = performance.now();
      return handle(frame).then((out) => {
        if (frame.t === 'act') meter.add(frame.n, performance.now() - t);
        return out;
      });
    };
    // Time the first load of layers the plan gives (the page reports it; the Node runtime logs its own).
    const shards = pipeline.shards;
    const get = shards.get.bind(shards);
    shards.get = async (...args: Parameters<typeof shards.get>) => {
      const t = performance.now();
      const shard = await get(...args);
      if (layersLoadedMs === null) {
        layersLoadedMs = performance.now() - t0;
        layersLoadMs = performance.now() - t;
      }
      return shard;
    };
    await pipeline.start();
    log.info(`serving model ${model.config.name}: waiting for the plan to give this tab layers`);
  })();
  started.catch((err: Error) => {
    if (!stopped.signal.aborted) log.error(`cannot serve: ${err.message}`);
  });

  return {
    host,
    profile,
    async status(): Promise<BrowserNodeStatus> {
      const self = membership.self();
      const all = [self, ...membership.members()];
      const ranges = (pipeline as ClusterPipeline | null)?.shards.ranges() ?? [];
      return {
        peerId: host.peerId,
        profile,
        layers: ranges.map((r) => ({ start: r.startLayer, end: r.endLayer })),
        cachedBytes: await store.storedBytes(),
        cachedTensors: await store.count(),
        weights: (model as PeerModelFile | null)?.fetchStats() ?? null,
        tokensPerSecond: meter.rate(),
        tokensTotal: meter.total,
        members: all.map((m) => ({
          peerId: m.peerId,
          name: m.name,
          runtime: m.profile.runtime,
          layers: layersOf(m.stageInfo?.ranges),
        })),
        model: (model as PeerModelFile | null)?.config.name ?? null,
        timings: { measuredMs, joinedMs, manifestMs, layersLoadedMs, layersLoadMs },
      };
    },
    async leave(): Promise<void> {
      stopped.abort();
      await started.catch(() => {});
      await (pipeline as ClusterPipeline | null)?.stop();
      await (model as PeerModelFile | null)?.close();
      links.stop();
      await membership.stop();
      await host.close();
      await runtime.close();
      store.close();
    },
  };
}

/** "[0, 2), [4, 5)" from the ranges a member announces ([start, end) pairs), as every view writes them. */
function layersOf(ranges: unknown): string {
  if (!Array.isArray(ranges)) return '';
  return ranges
    .filter((r): r is [number, number] => Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number')
    .map(([a, b]) => `[${a}, ${b})`)
    .join(', ');
}
