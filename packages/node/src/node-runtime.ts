import { chooseKernelIsa } from '@edge-node/kernels';
import { ApiRouter, readJsonBody } from './api/api-router.js';
import { OpenAIError } from './api/openai-errors.js';
import { DeviceWatch, type DeviceWatchOptions } from './cluster/device-watch.js';
import type { PlanChange } from './pipeline/plan-history.js';
import type { ReplanPolicy } from '@edge-node/partitioner';
import { DEFAULT_API_PORT, startApiServer, type ApiServer } from './api/api-server.js';
import { startComputeBackend, type EngineOptions } from './engine/engine-options.js';
import { defaultSlots } from './engine/request-slots.js';
import { LocalModel } from './engine/local-model.js';
import { dominantWeightType } from './model/stored-bytes-per-weight.js';
import type { DeviceLoad } from './cluster/device-load.js';
import { measureDevice, type DeviceProfile } from './cluster/device-profile.js';
import { refineProfile } from './cluster/profile-refiner.js';
import { LinkMonitor, type LinkMonitorOptions, type LinkStats } from './cluster/link-monitor.js';
import { Membership, type ClusterMember, type MembershipOptions, type StageInfo } from './cluster/membership.js';
import { createEdgeHost, type EdgeHost } from './network/edge-host.js';
import { createConsoleLogger, type NodeLogger } from './network/node-logger.js';
import { peerNamesLogger } from './network/peer-names-logger.js';
import { DEFAULT_MAX_FRAME_BYTES } from './network/frame-codec.js';
import { openModel } from './model/open-model.js';
import type { ModelFile } from './model/model-file.js';
import { resolveModelSource, type HubSettings } from './model/model-source.js';
import { serveWeights, type WeightsServer } from './weights/weights-server.js';
import { modelFromPeers } from './weights/model-from-peers.js';
import { loadTokenizer } from './tokenizer/load-tokenizer.js';
import { ClusterPipeline } from './pipeline/cluster-pipeline.js';
import { planSummary, type PlanSummary } from './pipeline/plan-summary.js';
import { addOpenAIApi, modelIdFor } from './api/openai-api.js';
import { ApiMetrics } from './api/api-metrics.js';
import { addJoinPageRoutes } from './api/join-page.js';

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
  /** A small model with the same tokenizer, whole on this node, that drafts for the requests it coordinates (`--draft-model`). */
  draftModelPath?: string;
  logger?: NodeLogger;
  maxFrameBytes?: number;
  membership?: MembershipOptions;
  linkMonitor?: LinkMonitorOptions;
  /** Device watch tuning (sampling period, probe, memory reserve, smoothing). */
  deviceWatch?: Pick<DeviceWatchOptions, 'intervalMs' | 'probeAfterIdleMs' | 'memoryReserveBytes' | 'slowdown'>;
  /** When load changes are worth a new plan. */
  replanPolicy?: ReplanPolicy;
}

export interface MemberStatus {
  peerId: string;
  name: string;
  addresses: string[];
  profile: DeviceProfile;
  /** Load as the node announces it: slowdown, other processes' CPU, available memory, memory budget. */
  load: DeviceLoad | null;
  /** Its decode GFLOP/s as the planner sees it now (measured ÷ slowdown ÷ calibration). */
  effectiveGflops: number;
  stageInfo: StageInfo | null;
  /** ms since this node last heard from it (0 for self). */
  lastSeenMsAgo: number;
}

export interface LinkStatus extends LinkStats {
  from: string;
  to: string;
}

/** Snapshot served at GET /v1/cluster and printed by `edge-node status`. */
export interface ClusterStatus {
  self: MemberStatus;
  peers: MemberStatus[];
  /** Every link measured by any member (each member shares its own measurements). */
  links: LinkStatus[];
  /** The current pipeline plan, once the pipeline sets one. */
  plan: unknown;
  /** Why the cluster cannot serve right now (e.g. the memory that is missing), or null. */
  planError: string | null;
  /** The last plan changes this node made as a coordinator, oldest first, with their reasons. */
  planHistory: PlanChange[];
  /** The coordinator's last verdict on its plan (why it was kept, or changed). */
  planDecision: string;
  /** The plan in force priced with the devices' current figures (ms/token), checked every second; null before. */
  planPredictedNowMs: number | null;
}

export interface HealthStatus {
  status: 'ok';
  peerId: string;
  name: string;
  addresses: string[];
  /** Connected cluster peers (members), not counting this node. */
  peers: number;
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
  setPlan(plan: unknown): void;
  stop(): Promise<void>;
}

/**
 * The plan as views show it: a node that left is no longer listed as left out (membership dropped it within the
 * failure timeout; the plan itself changes at the next request).
 */
function withoutDeparted(plan: unknown, present: ReadonlySet<string>): unknown {
  const p = plan as PlanSummary | null;
  if (!p || !Array.isArray(p.excluded)) return plan;
  return { ...p, excluded: p.excluded.filter((e) => present.has(e.device)) };
}

function memberStatus(m: ClusterMember, now: number, self: boolean): MemberStatus {
  return {
    peerId: m.peerId,
    name: m.name,
    addresses: m.addresses,
    profile: m.profile,
    load: m.load,
    effectiveGflops: Math.round((m.profile.gflopsDecode / ((m.load?.slowdown ?? 1) * (m.load?.calibration ?? 1))) * 100) / 100,
    stageInfo: m.stageInfo,
    lastSeenMsAgo: self ? 0 : now - m.lastSeen,
  };
}

/**
 * Starts a node: measures the device, starts libp2p (listen, bootstrap, mDNS), membership with heartbeats and
 * gossip, the link monitor, and the HTTP API (GET /health, GET /v1/cluster).
 */
export async function startEdgeNode(options: EdgeNodeOptions): Promise<EdgeNode> {
  // Names of nodes seen (kept after they leave, so a line about a node that just left still names it).
  const seenNames = new Map<string, string>();
  const logger = peerNamesLogger(options.logger ?? createConsoleLogger({ prefix: options.name }), () => seenNames);
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

  const host = await createEdgeHost({
    dataDir: options.dataDir,
    listen: options.listen,
    bootstrap: options.bootstrap,
    mdns: options.mdns,
    name: options.name,
    logger,
    start: false,
    ...(options.clusterKey ? { clusterKey: options.clusterKey } : {}),
    ...(options.maxFrameBytes ? { maxFrameBytes: options.maxFrameBytes } : {}),
  });
  seenNames.set(host.peerId, options.name);
  const membership = new Membership(host, { name: options.name, profile }, logger, options.membership);
  const links = new LinkMonitor(host, membership, logger, options.linkMonitor);
  let resolveFatal!: (e: Error) => void;
  const fatal = new Promise<Error>((r) => (resolveFatal = r));
  host.events.on('fatal', (e: Error) => resolveFatal(e));
  membership.events.on('fatal', (e: Error) => resolveFatal(e));

  await membership.start();
  await links.start();

  let pipeline: ClusterPipeline | null = null;
  let plan: unknown = null;
  /** Requests running here (as coordinator or stage): no time for measurements that take the CPU from them. */
  const serving = () => (pipeline?.executor.activeRequests ?? 0) > 0 || (pipeline?.worker.sessionCount ?? 0) > 0;
  const watch = new DeviceWatch({
    profileMemoryBytes: profile.memoryBytes,
    // What shedding layers frees: the weights' bytes (held once, in the file's encoding).
    heldBytes: () => pipeline?.heldWeightBytes ?? 0,
    announce: (load) => membership.setLoad(load),
    // Serving, the stage's own compute is measured; the probe would take a throttled node's few milliseconds from it.
    probeWhen: () => pipeline !== null && !serving(),
    log: logger,
    ...options.deviceWatch,
  });
  let servedContext = 0;
  let servedPath = '';
  let slots = options.concurrency ?? 4;
  const metrics = new ApiMetrics();
  let weights: WeightsServer | null = null;
  let draftModel: LocalModel | null = null;
  membership.events.on('join', (m: ClusterMember) => seenNames.set(m.peerId, m.name));
  const nameOf = (peerId: string) => membership.get(peerId)?.name ?? seenNames.get(peerId) ?? peerId.slice(-8);
  const startPipeline = async (model: ModelFile, source: string): Promise<void> => {
    compute.checkModel(model);
    const tokenizer = await loadTokenizer(model.tokenizer);
    const contextLength = Math.min(options.contextLength ?? 4096, model.config.contextLength);
    logger.info(`model: ${modelIdFor(options.modelPath ?? model.path)} (${model.config.architecture}, ${model.config.numLayers} layers, context ${contextLength}) from ${source}`);
    if (options.concurrency === undefined) {
      const c = model.config;
      const s = defaultSlots({
        memoryBytes: profile.memoryBytes,
        weightBytes: [...model.tensors.values()].reduce((sum, t) => sum + t.byteLength, 0),
        numLayers: c.numLayers,
        kvDim: c.numKvHeads * c.headDim,
        contextLength,
        kvCache: compute.kvCache,
      });
      slots = s.slots;
      logger.info(`slots: ${s.reason} (--parallel N to set)`);
    }
    if (options.draftModelPath !== undefined && !draftModel) {
      draftModel = await LocalModel.open(options.draftModelPath, { compute, contextLength });
      logger.info(`draft model: ${modelIdFor(options.draftModelPath)} (${draftModel.config.numLayers} layers), for speculative decoding`);
    }
    const draft = draftModel?.asDraftFor(tokenizer, contextLength);
    pipeline = new ClusterPipeline({
      host,
      membership,
      log: logger,
      model,
      tokenizer,
      compute,
      contextLength,
      concurrency: slots,
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      ...(options.prefixCacheBytes !== undefined ? { prefixCacheBytes: options.prefixCacheBytes } : {}),
      ...(options.speculate !== undefined ? { speculate: options.speculate } : {}),
      ...(draft ? { draftModel: draft } : {}),
      ...(options.split ? { split: options.split } : {}),
      onPlan: (p) => (plan = planSummary(p)),
      onStageStep: (rows, requests) => metrics.observeBatch(rows, requests),
      onStep: (rid, timing) => {
        const route = pipeline?.executor.routeOf(rid);
        // Network hops around the ring: between consecutive stages, and to/from the coordinator when it is no stage's end.
        const hops = route ? route.peers.length - 1 + (route.peers[0] === host.peerId ? 0 : 1) + (route.peers.at(-1) === host.peerId ? 0 : 1) : 0;
        metrics.observeStep(timing, route, hops);
      },
      onRecovery: (e) => {
        metrics.observeRecovery(e);
        logger.warn(
          `request ${e.requestId}: recovered from the loss of ${nameOf(e.lostPeer)} in ${e.recoveryMs.toFixed(0)} ms ` +
            `(plan ${e.oldPlan} → ${e.newPlan}, ${e.replayedTokens} tokens replayed)`,
        );
      },
      onRecoveryFailed: () => metrics.observeRecoveryFailure(),
      observeCompute: (measured, expected, profile) => watch.observeCompute(measured, expected, profile),
      onMigrate: (e) => logger.info(`request ${e.requestId}: moved to plan ${e.newPlan} at a token boundary (${e.replayedTokens} tokens replayed in ${e.ms.toFixed(0)} ms)`),
      ...(options.replanPolicy ? { replanPolicy: options.replanPolicy } : {}),
    });
    servedContext = contextLength;
    servedPath = model.path;
    await pipeline.start();
  };
  if (options.modelPath) {
    const model = await openModel(await resolveModelSource(options.modelPath, options.dataDir, options.hub, logger));
    weights = await serveWeights(host, model, logger, modelIdFor(options.modelPath));
    await startPipeline(model, options.modelPath);
  }
  const router = new ApiRouter();
  let api: ApiServer;
  try {
    await host.start();
    api = await startApiServer(router, { port: options.apiPort ?? DEFAULT_API_PORT, ...(options.apiHost ? { host: options.apiHost } : {}) });
  } catch (err) {
    await host.close().catch(() => {});
    throw err;
  }
  if (!options.modelPath && options.modelFromPeers) {
    try {
      await startPipeline(await modelFromPeers(host, membership, options.dataDir, logger), 'peers (only this node\'s layers are fetched)');
    } catch (err) {
      await Promise.all([api.close(), host.close()]).catch(() => {});
      throw err;
    }
  }

  membership.setLoad(watch.current());
  watch.start();
  const refiner = refineProfile({
    membership,
    initial: profile,
    isBusy: serving,
    // Once the model is known, time the kernel of the type most of its weights have (kernels differ by type).
    measure: (between) => {
      const weightType = pipeline ? dominantWeightType(pipeline.model) : null;
      return measureDevice({ ...measureOptions, between, ...(weightType ? { weightType } : {}) });
    },
    // Each also waits for 20 s without requests (profile-refiner.ts).
    delaysMs: [5_000, 15_000, 45_000],
    log: logger,
  });
  const node: EdgeNode = {
    options,
    host,
    membership,
    links,
    profile,
    watch,
    router,
    api,
    logger,
    pipeline,
    fatal,
    health: () => ({ status: 'ok', peerId: host.peerId, name: options.name, addresses: host.addresses(), peers: membership.members().length }),
    status: () => {
      const now = Date.now();
      const all = [membership.self(), ...membership.members()];
      return {
        self: memberStatus(all[0], now, true),
        peers: all.slice(1).map((m) => memberStatus(m, now, false)),
        links: all.flatMap((m) => Object.entries(m.links).map(([to, s]) => ({ from: m.peerId, to, ...s }))),
        plan: withoutDeparted(plan, new Set(all.map((m) => m.peerId))),
        planError: pipeline?.planError ?? null,
        planHistory: pipeline?.history.list() ?? [],
        planDecision: pipeline?.lastDecision ?? '',
        planPredictedNowMs: pipeline?.predictedNowMs ?? null,
      };
    },
    setPlan: (p: unknown) => {
      plan = p;
    },
    stop: async () => {
      refiner.stop();
      watch.stop();
      await pipeline?.stop();
      await weights?.close();
      links.stop();
      await membership.stop();
      await Promise.all([api.close(), host.close()]);
      await draftModel?.close();
      await compute.close();
    },
  };
  router.add('GET', '/health', () => node.health(), { public: true });
  // The operator lowers (or restores, with null) the memory this node offers while it runs: it sheds layers.
  router.add('PUT', '/v1/node/memory-budget', async (req) => {
    const body = (await readJsonBody(req, 4096)) as { bytes?: unknown } | null;
    const bytes = body?.bytes;
    if (bytes !== null && (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0)) {
      throw new OpenAIError(400, 'send {"bytes": N} with N >= 0 (the memory this node may use), or {"bytes": null} for its start-up budget', 'invalid_request_error', 'invalid_memory_budget');
    }
    watch.setMemoryBudget(bytes);
    return { memoryBudgetBytes: watch.current().memoryBudgetBytes, reason: watch.current().memoryReason };
  });
  addOpenAIApi(router, {
    generator: pipeline,
    metrics,
    contextLength: servedContext,
    concurrency: slots,
    clusterStatus: () => node.status(),
    peers: () => membership.members().length,
    nodeName: (id) => (id === host.peerId ? options.name : (membership.members().find((m) => m.peerId === id)?.name ?? id.slice(-8))),
    ...(options.modelPath ? { modelPath: options.modelPath } : {}),
    // From peers: the id the serving node gave in its manifest (the last segment of the peer model's path).
    ...(!options.modelPath && servedPath ? { modelId: modelIdFor(servedPath) } : {}),
    ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
    ...(options.queueLength !== undefined ? { queueLength: options.queueLength } : {}),
  });
  // GET /join: a browser tab joins as a node (packages/browser), dialing one of this node's WebSocket addresses.
  addJoinPageRoutes(router, {
    info: () => ({
      name: options.name,
      peerId: host.peerId,
      wsAddresses: host.addresses().filter((a) => /\/wss?\//.test(a)),
      clusterKeyRequired: options.clusterKey !== undefined,
    }),
  });
  return node;
}
