import { chooseKernelIsa } from '@edge-node/kernels';
import { ApiRouter } from './api/api-router.js';
import { DeviceWatch, type DeviceWatchOptions } from './cluster/device-watch.js';
import type { ReplanPolicy } from '@edge-node/partitioner';
import { DEFAULT_API_PORT } from './api/api-defaults.js';
import type { JoinAssets } from './api/join-page.js';
import { startApiServer, type ApiServer } from './api/api-server.js';
import { startComputeBackend, type EngineOptions } from './engine/engine-options.js';
import { dominantWeightType } from './model/stored-bytes-per-weight.js';
import { measureDevice, type DeviceProfile, type MeasureDeviceOptions } from './cluster/device-profile.js';
import { refineProfile } from './cluster/profile-refiner.js';
import type { LinkMonitor, LinkMonitorOptions } from './cluster/link-monitor.js';
import type { ClusterMember, Membership, MembershipOptions } from './cluster/membership.js';
import { createEdgeHost, type EdgeHost } from './network/edge-host.js';
import { createConsoleLogger, type NodeLogger } from './network/node-logger.js';
import { peerNamesLogger } from './network/peer-names-logger.js';
import { openModel } from './model/open-model.js';
import type { ModelFile } from './model/model-file.js';
import { resolveModelSource, type HubSettings } from './model/model-source.js';
import { serveWeights, type WeightsServer } from './weights/weights-server.js';
import { modelFromPeers } from './weights/model-from-peers.js';
import type { ClusterPipeline } from './pipeline/cluster-pipeline.js';
import { modelIdFor } from './api/openai-api.js';
import { ApiMetrics } from './api/api-metrics.js';
import { addNodeRoutes } from './node-routes.js';
import { startNodePipeline, type ServedModel } from './node-pipeline.js';
import { ClusterNode, type ClusterNodeComponents } from './cluster-node.js';
import { clusterStatus, type ClusterStatus, type HealthStatus } from './node-status.js';

export interface EdgeNodeOptions {
  name: string;
  dataDir: string;
  listen: string[];
  bootstrap: string[];
  mdns: boolean;
  clusterKey?: Uint8Array;
  /** HTTP API port (default 8080; 0 picks a free port). */
  apiPort?: number;
  /** HTTP API bind address (default 127.0.0.1). */
  apiHost?: string;
  memoryBudgetBytes?: number;
  /** Compute threads and KV cache type (`--threads`, `--kv-cache`). */
  engine?: EngineOptions;
  /**
   * Model file or folder this node serves, or a Hugging Face repo id (`owner/name[@rev][/file.gguf]`) downloaded into
   * `<dataDir>/hub`. A node with a model also serves its weights to peers. Without one the node only relays, unless
   * `modelFromPeers` is set.
   */
  modelPath?: string;
  /** Hub endpoint, token and progress for a repo id in modelPath. */
  hub?: HubSettings;
  /** Without modelPath: wait for a peer that has the model and fetch only this node's layers from it. */
  modelFromPeers?: boolean;
  /** Layers per stage for the nodes in name order (e.g. [2, 3]), instead of the partitioner's plan. */
  split?: number[];
  /** Context limit per request in tokens (default: the model's, at most 4096). */
  contextLength?: number;
  /**
   * Requests this node runs at once (its slots; `--parallel`): the plan reserves KV memory for them and they are
   * batched together; more wait in the queue. Default: as many full-context KV caches as fit the memory budget
   * beside the weights, 1 to 16 (request-slots.ts).
   */
  concurrency?: number;
  /** When set, the HTTP API (but / and /health) requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Requests that may wait for a pipeline slot before new ones get a 429 (default 32). */
  queueLength?: number;
  /** Bytes of KV blocks kept across requests for conversations that continue (`--prefix-cache`; 0 disables; default 256 MiB). */
  prefixCacheBytes?: number;
  /** Speculative decoding (prompt-lookup drafts) for requests that do not say (`--speculate`; default on). */
  speculate?: boolean;
  /** Requests in flight move to a new plan with their KV caches (`--live-moves`; default on); off: they replay. */
  liveMoves?: boolean;
  /**
   * A small model with the same tokenizer, whole on this node, that drafts for the requests it coordinates
   * (`--draft-model`): a file or folder, or a Hugging Face repo id fetched into the cache as modelPath's is.
   */
  draftModelPath?: string;
  /** A LoRA adapter file (llama.cpp's GGUF) and the scale to apply it with (`--lora`, `--lora-scale`): every stage applies its slice. */
  lora?: { path: string; scale: number };
  logger?: NodeLogger;
  maxFrameBytes?: number;
  membership?: MembershipOptions;
  linkMonitor?: LinkMonitorOptions;
  /** Device watch tuning (sampling period, probe, memory reserve, smoothing). */
  deviceWatch?: Pick<DeviceWatchOptions, 'intervalMs' | 'probeAfterIdleMs' | 'memoryReserveBytes' | 'slowdown'>;
  /** When load changes are worth a new plan. */
  replanPolicy?: ReplanPolicy;
  /** The browser node's page and bundle, served at GET /join (`edge-node start` gives packages/browser's). */
  joinAssets?: JoinAssets;
}

export interface EdgeNode {
  readonly options: EdgeNodeOptions;
  readonly host: EdgeHost;
  readonly membership: Membership;
  readonly links: LinkMonitor;
  readonly profile: DeviceProfile;
  /** Load and memory of this device while it serves. */
  readonly watch: DeviceWatch;
  /** Add HTTP routes here (e.g. `router.add('POST', '/v1/chat/completions', handler)`). */
  readonly router: ApiRouter;
  readonly api: ApiServer;
  readonly logger: NodeLogger;
  /** The pipeline (stage server and coordinator), when the node has a model. */
  readonly pipeline: ClusterPipeline | null;
  /** Rejects never; resolves with an error that requires the node to stop (e.g. DuplicatePeerIdError). */
  readonly fatal: Promise<Error>;
  health(): HealthStatus;
  status(): ClusterStatus;
  stop(): Promise<void>;
}

/** This device: its compute backend and its profile measured with it, logged with the kernel build chosen. */
async function measureThisDevice(options: EdgeNodeOptions, logger: NodeLogger) {
  const compute = await startComputeBackend(options.engine ?? {});
  const measureOptions = {
    compute,
    ...(options.memoryBudgetBytes !== undefined ? { memoryBudgetBytes: options.memoryBudgetBytes } : {}),
  };
  const profile = await measureDevice(measureOptions);
  const kernelBuild = await chooseKernelIsa();
  logger.info(
    `device: ${compute.summary}, decode ${profile.gflopsDecode} GFLOP/s, prefill ${profile.gflopsPrefill} GFLOP/s, ` +
      `${profile.memBandwidthGBps} GB/s, memory budget ${(profile.memoryBytes / 1e9).toFixed(1)} GB (${profile.memorySource}); kernel build ${kernelBuild.isa} (${kernelBuild.reason})`,
  );

  return { compute, measureOptions, profile };
}

/** libp2p (not listening yet) and the cluster node on it, started; `fatal` resolves with an error that stops the node. */
async function startClusterNetwork(options: EdgeNodeOptions, parts: Omit<ClusterNodeComponents, 'host'>, seenNames: Map<string, string>) {
  const host = await createEdgeHost({
    dataDir: options.dataDir,
    listen: options.listen,
    bootstrap: options.bootstrap,
    mdns: options.mdns,
    name: options.name,
    logger: parts.log,
    start: false,
    ...(options.clusterKey ? { clusterKey: options.clusterKey } : {}),
    ...(options.maxFrameBytes ? { maxFrameBytes: options.maxFrameBytes } : {}),
  });
  seenNames.set(host.peerId, options.name);
  const cluster = new ClusterNode({ ...parts, host }, {
    name: options.name,
    ...(options.membership ? { membership: options.membership } : {}),
    ...(options.linkMonitor ? { linkMonitor: options.linkMonitor } : {}),
  });
  let resolveFatal!: (e: Error) => void;
  const fatal = new Promise<Error>((r) => (resolveFatal = r));
  host.events.on('fatal', (e: Error) => resolveFatal(e));
  cluster.membership.events.on('fatal', (e: Error) => resolveFatal(e));
  cluster.membership.events.on('join', (m: ClusterMember) => seenNames.set(m.peerId, m.name));
  await cluster.start();
  return { host, cluster, fatal };
}

/** libp2p listening, then the HTTP API; libp2p closed again when the API cannot listen. */
async function startListening(host: EdgeHost, router: ApiRouter, options: EdgeNodeOptions): Promise<ApiServer> {
  try {
    await host.start();
    return await startApiServer(router, { port: options.apiPort ?? DEFAULT_API_PORT, ...(options.apiHost ? { host: options.apiHost } : {}) });
  } catch (err) {
    await host.close().catch(() => {});
    throw err;
  }
}

/** This device's load and memory while it serves, announced to the cluster. */
function watchDevice(options: EdgeNodeOptions, profile: DeviceProfile, membership: Membership, pipeline: () => ClusterPipeline | null, serving: () => boolean, logger: NodeLogger): DeviceWatch {
  return new DeviceWatch({
    profileMemoryBytes: profile.memoryBytes,
    // What shedding layers frees: the weights' bytes (held once, in the file's encoding).
    heldBytes: () => pipeline()?.heldWeightBytes ?? 0,
    announce: (load) => membership.setLoad(load),
    // Serving, the stage's own compute is measured; the probe would take a throttled node's few milliseconds from it.
    probeWhen: () => pipeline() !== null && !serving(),
    log: logger,
    ...options.deviceWatch,
  });
}

/** Measures the device again when it is idle, with the kernel of the model's dominant weight type once there is one. */
function startRefiner(membership: Membership, profile: DeviceProfile, measureOptions: MeasureDeviceOptions, serving: () => boolean, model: () => ModelFile | null, logger: NodeLogger) {
  return refineProfile({
    membership,
    initial: profile,
    isBusy: serving,
    // Once the model is known, time the kernel of the type most of its weights have (kernels differ by type).
    measure: (between) => {
      const m = model();
      const weightType = m ? dominantWeightType(m) : null;
      return measureDevice({ ...measureOptions, between, ...(weightType ? { weightType } : {}) });
    },
    // Each also waits for 20 s without requests (profile-refiner.ts).
    delaysMs: [5_000, 15_000, 45_000],
    log: logger,
  });
}

/**
 * Starts a node: measures the device, starts libp2p (listen, bootstrap, mDNS) and the ClusterNode on it (membership
 * with heartbeats and gossip, the link monitor, the pipeline once there is a model), and the HTTP API (GET /health,
 * GET /v1/cluster). The browser tab composes the same ClusterNode from its own parts (packages/browser).
 */
export async function startEdgeNode(options: EdgeNodeOptions): Promise<EdgeNode> {
  // Names of nodes seen (kept after they leave, so a line about a node that just left still names it).
  const seenNames = new Map<string, string>();
  const logger = peerNamesLogger(options.logger ?? createConsoleLogger({ prefix: options.name }), () => seenNames);
  const { compute, measureOptions, profile } = await measureThisDevice(options, logger);
  const { host, cluster, fatal } = await startClusterNetwork(options, { compute, profile, log: logger }, seenNames);
  const { membership } = cluster;
  const pipeline = () => cluster.pipeline;
  /**
   * Requests or a fine-tuning job running here (as coordinator, owner or stage): no time for measurements that take
   * the CPU from them, and none that would read this node's own work as another's load (the idle probe waited behind
   * a job's layers read 40–47× slower than profiled, and the next job's plan was priced with it: 45 s for a 1.7 s step).
   */
  const serving = () => (pipeline()?.executor.activeRequests ?? 0) > 0 || (pipeline()?.worker.sessionCount ?? 0) > 0 || (pipeline()?.training ?? false);
  const watch = watchDevice(options, profile, membership, pipeline, serving, logger);
  const metrics = new ApiMetrics();
  const nameOf = (peerId: string) => membership.get(peerId)?.name ?? seenNames.get(peerId) ?? peerId.slice(-8);
  const serve = (model: ModelFile, source: string) => startNodePipeline({ options, cluster, selfId: host.peerId, compute, profile, logger, metrics, watch, nameOf }, model, source);
  let served: ServedModel | null = null;
  let weights: WeightsServer | null = null;
  if (options.modelPath) {
    const model = await openModel(await resolveModelSource(options.modelPath, options.dataDir, options.hub, logger));
    weights = await serveWeights(host, model, logger, modelIdFor(options.modelPath));
    served = await serve(model, options.modelPath);
  }
  const router = new ApiRouter();
  const api = await startListening(host, router, options);
  if (!options.modelPath && options.modelFromPeers) {
    try {
      served = await serve(await modelFromPeers(host, membership, options.dataDir, logger), 'peers (only this node\'s layers are fetched)');
    } catch (err) {
      await Promise.all([api.close(), host.close()]).catch(() => {});
      throw err;
    }
  }

  membership.setLoad(watch.current());
  watch.start();
  // Re-measured only while it serves nothing and reads quiet: a busy device's measurement only reads low (the refiner
  // keeps the best), and its products, each whole, can hold a starved node's loop for seconds (a starved node declared
  // lost in bench:load-faults went silent just as its re-measurement was due).
  const refiner = startRefiner(membership, profile, measureOptions, () => serving() || watch.current().slowdown > 1, () => pipeline()?.model ?? null, logger);
  const node: EdgeNode = {
    options,
    host,
    membership,
    links: cluster.links,
    profile,
    watch,
    router,
    api,
    logger,
    pipeline: pipeline(),
    fatal,
    health: () => ({ status: 'ok', peerId: host.peerId, name: options.name, addresses: host.addresses(), peers: membership.members().length }),
    status: () => clusterStatus(membership, pipeline()),
    stop: async () => {
      refiner.stop();
      watch.stop();
      await cluster.stop();
      await weights?.close();
      await Promise.all([api.close(), host.close()]);
      await served?.draftModel?.close();
      await compute.close();
    },
  };
  addNodeRoutes(router, node, {
    metrics,
    contextLength: served?.contextLength ?? 0,
    concurrency: served?.slots ?? options.concurrency ?? 4,
    ...(!options.modelPath && served ? { servedModelId: modelIdFor(served.modelPath) } : {}),
  });
  return node;
}
