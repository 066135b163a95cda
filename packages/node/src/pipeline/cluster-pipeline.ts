import { modelProfile, type ModelProfile, type ReplanPolicy, type TrainingShape } from '@edge-node/partitioner';
import type { ClusterMember, Membership } from '../cluster/membership.js';
import type { ComputeBackend } from '../engine/compute-backend.js';
import { embeddingRequest } from '../engine/embedding-request.js';
import { generate, type GenerationResult } from '../engine/generate.js';
import type { EmbedOptions, Generator, GeneratorOptions } from '../engine/generator.js';
import type { StepTiming } from '../engine/bench-probe.js';
import { DEFAULT_PREFIX_CACHE_BYTES, type PrefixCacheReport } from '../engine/prefix-cache.js';
import { DEFAULT_MAX_DRAFT, NodeSpeculation, speculatesByDefault, type DraftSource, type SpeculationReport } from '../engine/speculation.js';
import { buildTokenVocabulary, type TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { LayerRange } from '../engine/layer-range.js';
import type { ModelConfig } from '../model/model-config.js';
import type { ModelFile } from '../model/model-file.js';
import { storedBytesPerWeight } from '../model/stored-bytes-per-weight.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ActivationRouter } from './activation-router.js';
import { ClusterBenchProbe } from './cluster-bench-probe.js';
import type { CoordinatorLora } from './lora-slices.js';
import { modelFingerprint, modelShapeOf, type ClusterPlan } from './cluster-plan.js';
import { maxRowsPerFrame } from './frame-limits.js';
import { PipelineExecutor } from './pipeline-executor.js';
import type { PlanChange } from './plan-history.js';
import { PrefixDirectory } from './prefix-directory.js';
import { Replanner } from './replanner.js';
import type { MigrationEvent, RecoveryEvent } from './route-change-events.js';
import type { Route } from './route.js';
import { readServedStep, ringHopLatencyMs } from './served-hops.js';
import type { ShardStore } from './shard-store.js';
import { StageControl } from './stage-control.js';
import type { KvAdoptRequest } from './kv-move-control.js';
import { StageServer } from './stage-server.js';
import { ClusterFinetune } from './cluster-finetune.js';
import { trainFrameLimits } from './train-frames.js';
import { TrainServer } from './train-server.js';
import { trainingRouteStepMs, trainingSplit, type TrainingSplitInput } from './training-split.js';
import type { StageWorker } from './stage-worker.js';

/** Decode steps kept between two adaptation ticks for the served hops (a second of the quickest ring's). */
const MAX_SERVED_STEPS = 4096;

export interface ClusterPipelineOptions {
  host: EdgeHost;
  /**
   * The node's activation router, built once by the composition root and shared by this node's stage and its
   * coordinator: frames for the stage go to StageServer, tokens for the coordinator straight to PipelineExecutor.
   * Its limits: frameLimits() for this model, contextLength and maxFrameBytes.
   */
  router: ActivationRouter;
  membership: Membership;
  log: NodeLogger;
  model: ModelFile;
  tokenizer: Tokenizer;
  /** What computes this node's layers (the kernels, or tfjs with `--backend tfjs`). */
  compute: ComputeBackend;
  /** Layers per node in name order, instead of the partitioner's plan. */
  split?: number[];
  /** Context limit per request (prompt + generated). */
  contextLength: number;
  /** Requests the plan reserves KV memory for. */
  concurrency: number;
  maxFrameBytes: number;
  onPlan?: (plan: ClusterPlan) => void;
  onStep?: (rid: string, timing: StepTiming) => void;
  /** After each batched step of this node's stage: rows and requests computed together, and its milliseconds. */
  onStageStep?: (rows: number, requests: number, ms: number) => void;
  onRecovery?: (event: RecoveryEvent) => void;
  onRecoveryFailed?: (requestId: string, lostPeer: string, error: Error) => void;
  /** Each run of this node's stage: measured ms against what the node's profile predicts (for the device watch). */
  observeCompute?: (measuredMs: number, expectedMs: number, kind: 'decode' | 'prompt', expectedByPreviousMs?: number, newRange?: boolean, passMs?: number) => void;
  /**
   * Each plain decode step of a request this node coordinates alone, over the network: ms outside its stages' compute
   * against what the cost model prices of it besides the hops' latency, and its network hops (served-hops.ts; for the
   * device watch).
   */
  observeServedStep?: (measuredMs: number, fixedMs: number, hops: number, at: number) => void;
  /** Every adaptation tick: what the cost model prices a hop of the ring last served at now, or null (served-hops.ts). */
  servedRingLatency?: (latencyPerHopMs: number | null) => void;
  /** A coordinator's load of layers on this node's stage finished, after `ms` (read, or held already). */
  onLayersLoaded?: (range: LayerRange, ms: number) => void;
  onMigrate?: (event: MigrationEvent) => void;
  onPlanChange?: (change: PlanChange) => void;
  /** When load changes are worth a new plan (threshold, payback, hysteresis). */
  replanPolicy?: ReplanPolicy;
  /** Bytes of KV blocks this node's stage keeps across requests (`--prefix-cache`; 0 disables). Default 256 MiB. */
  prefixCacheBytes?: number;
  /** Speculative decoding (prompt lookup) for the requests it coordinates that do not say (`--speculate`). Default: on with the kernels, off with tfjs. */
  speculate?: boolean;
  /** Requests in flight move to a new plan with their KV caches (live-move.ts). Default on; off: they replay their history. */
  liveMoves?: boolean;
  /** A draft model on this node (`--draft-model`): drafts for the requests it coordinates come from it. */
  draftModel?: DraftSource;
  /** A LoRA adapter (`--lora`): every stage of this node's plans applies its slice to the requests it coordinates. */
  lora?: CoordinatorLora;
  /** How often the coordinator checks whether its plan still pays (ms). Default 1000. */
  adaptIntervalMs?: number;
  /** Rate at which a node loads layers it did not hold, for the cost of a move (MB/s). Default 200. */
  loadMBps?: number;
}

/**
 * A node's part in the cluster for one model, and the Generator the HTTP API serves: this node's stage
 * (StageServer, serving every coordinator's ring), the coordinator of the requests this node receives
 * (PipelineExecutor, over the router the composition root gives both), the plan in force (Replanner: planned from
 * membership, re-planned when loads change) and the control of the stages it uses (StageControl). `generate()` runs
 * the generation loop over the PipelineExecutor.
 */
export class ClusterPipeline implements Generator {
  readonly fingerprint: string;
  /** This node's stage, serving every coordinator's ring (this node's own included). */
  readonly stage: StageServer;
  readonly executor: PipelineExecutor;
  /** The plan in force, its changes and their reasons. */
  readonly planner: Replanner;
  /** `edge-node bench`'s view of the ring: its topology, and runs that report every step. */
  readonly bench: ClusterBenchProbe;
  /** Fine-tuning jobs this node owns, through the plan's stages (docs/finetune.md). */
  readonly finetune: ClusterFinetune;
  /** This node as a stage of fine-tuning jobs (its own and other owners'). */
  private readonly trainer: TrainServer;
  /** A fine-tuning job runs here, as its owner or as a stage of it. */
  get training(): boolean {
    return this.finetune.busy || this.trainer.openJobs > 0;
  }

  /** The LoRA adapter this node's requests are served with, or null. */
  get lora(): CoordinatorLora | null {
    return this.opts.lora ?? null;
  }
  private readonly control: StageControl;
  private readonly router: ActivationRouter;
  private adaptTimer: NodeJS.Timeout | null = null;
  /** Decode steps since the last adaptation tick, for the served hops (keepServedStep). */
  private servedSteps: { timing: StepTiming; route: Route; at: number }[] = [];
  /** The route of the last served step read: its links price the served hops' excess as they are now. */
  private servedRoute: Route | null = null;
  private readonly profile: ModelProfile;
  private readonly speculating: NodeSpeculation;
  private vocab: TokenVocabulary | null = null;

  constructor(private readonly opts: ClusterPipelineOptions) {
    const { model, host, membership, log, router } = opts;
    this.router = router;
    this.speculating = new NodeSpeculation(opts.speculate ?? speculatesByDefault(opts.compute), DEFAULT_MAX_DRAFT, opts.draftModel ?? null);
    this.fingerprint = modelFingerprint(model.config);
    const maxRows = maxRowsPerFrame(model.config, opts.maxFrameBytes);
    const profile = modelProfile(modelShapeOf(model.config, storedBytesPerWeight(model), opts.compute.kvCache));
    this.profile = profile;
    this.stage = this.stageServer(profile, maxRows);
    this.control = new StageControl({ host, stage: this.stage, fingerprint: this.fingerprint, log, ...(opts.lora ? { lora: opts.lora } : {}) });
    this.planner = new Replanner({
      selfId: host.peerId,
      membership,
      log,
      model,
      kvCache: opts.compute.kvCache,
      fingerprint: this.fingerprint,
      ...(opts.lora ? { lora: opts.lora.id } : {}),
      profile,
      contextLength: opts.contextLength,
      concurrency: opts.concurrency,
      control: this.control,
      liveMoves: opts.liveMoves !== false,
      ...pick(opts, ['onPlan', 'onPlanChange', 'replanPolicy', 'loadMBps']),
    });
    this.executor = new PipelineExecutor({
      router,
      routeFor: (_request, exclude) => {
        // A lost node's stream is dropped now, even if membership has not dropped the node yet.
        for (const p of exclude) router.forget(p);
        return this.planner.routeFor(exclude);
      },
      maxRowsPerFrame: maxRows,
      log,
      isPeerAlive: (p) => p === host.peerId || membership.get(p) !== undefined,
      latestRoute: () => this.planner.latestRoute(),
      ...(opts.liveMoves !== false ? { adoptKv: (peer: string, req: KvAdoptRequest) => this.control.adoptKv(peer, req) } : {}),
      directory: new PrefixDirectory(),
      onMigrate: (e) => {
        if (e.replayedTokens === 0) this.planner.noteSwitch(e.ms);
        opts.onMigrate?.(e);
      },
      onStep: (rid, timing) => {
        opts.onStep?.(rid, timing);
        this.keepServedStep(rid, timing);
      },
      ...pick(opts, ['onRecovery', 'onRecoveryFailed']),
    });
    ({ trainer: this.trainer, finetune: this.finetune } = this.trainParts());
    this.bench = new ClusterBenchProbe({
      selfId: host.peerId,
      executor: this.executor,
      tokenizer: opts.tokenizer,
      model,
      fingerprint: this.fingerprint,
      members: () => [membership.self(), ...membership.members()],
      activeRoute: () => this.planner.activePlan?.route ?? null,
      contextLength: opts.contextLength,
      maxRowsPerFrame: maxRows,
      speculation: this.speculating,
    });
  }

  private trainParts(): { trainer: TrainServer; finetune: ClusterFinetune } {
    const { host, model, log, compute, tokenizer } = this.opts;
    const refusal = compute.name === 'kernels' ? null : `the ${compute.name} backend cannot train; start the node with the default kernels backend`;
    const limits = trainFrameLimits(model.config, this.opts.contextLength, this.opts.maxFrameBytes);
    const splitInput = (exclude: ReadonlySet<string>, job: TrainingShape): TrainingSplitInput => ({
      members: [this.opts.membership.self(), ...this.opts.membership.members()].filter((m) => !exclude.has(m.peerId)),
      config: model.config,
      bytesPerWeight: storedBytesPerWeight(model),
      fingerprint: this.fingerprint,
      self: host.peerId,
      job,
      serving: this.planner.activePlan?.route ?? null,
    });
    return {
      trainer: new TrainServer({ host, model, fingerprint: this.fingerprint, limits, threads: compute.threads, refusal, log }),
      finetune: new ClusterFinetune({
        host,
        model,
        tokenizer,
        fingerprint: this.fingerprint,
        routeFor: (exclude) => this.planner.routeFor(exclude),
        trainingSplit: (exclude, job) => trainingSplit(splitInput(exclude, job)),
        priceRoute: (route, job) => trainingRouteStepMs(splitInput(new Set(), job), route),
        nameOf: (peer) => (peer === host.peerId ? this.opts.membership.self().name : (this.opts.membership.get(peer)?.name ?? peer.slice(-8))),
        availableMemory: (peer) => (peer === host.peerId ? this.opts.membership.self() : this.opts.membership.get(peer))?.load?.availableMemoryBytes ?? null,
        threads: compute.threads,
        log,
      }),
    };
  }

  private stageServer(profile: ModelProfile, maxRows: number): StageServer {
    const { opts } = this;
    return new StageServer({
      host: opts.host,
      router: opts.router,
      membership: opts.membership,
      log: opts.log,
      model: opts.model,
      compute: opts.compute,
      fingerprint: this.fingerprint,
      profile,
      maxRowsPerFrame: maxRows,
      vocabulary: () => this.vocabulary(),
      prefixCacheBytes: opts.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES,
      readKv: (peer, req) => this.control.readKv(peer, req),
      readLora: (peer, req) => this.control.readLora(peer, req),
      ...(opts.lora ? { lora: opts.lora } : {}),
      ...(opts.split ? { split: opts.split } : {}),
      ...pick(opts, ['onStageStep', 'observeCompute', 'onLayersLoaded']),
    });
  }

  /** Registers the protocol handlers (before the host starts), announces the model, and follows membership. */
  async start(): Promise<void> {
    await this.router.start({ stage: (frame, from) => this.stage.handle(frame, from), coordinator: (frame) => this.executor.onFrame(frame) });
    await this.stage.start();
    await this.trainer.start();
    const m = this.opts.membership;
    m.events.on('join', (member: ClusterMember) => this.planner.memberJoined(member));
    m.events.on('update', (member: ClusterMember) => this.planner.memberUpdated(member));
    m.events.on('leave', (member: ClusterMember, reason: string) => this.onLeave(member, reason));
    this.adaptTimer = setInterval(() => {
      void this.stage.trimShards();
      this.readServedSteps();
      void this.planner.adapt();
    }, this.opts.adaptIntervalMs ?? 1000);
    this.adaptTimer.unref();
  }

  /** An embedding: the prompt once round the ring, pooled at the last stage. */
  embed(opts: EmbedOptions): Promise<Float32Array> {
    return this.executor.embed(embeddingRequest(opts));
  }

  /** Runs one request through the cluster. */
  async generate(opts: GeneratorOptions): Promise<GenerationResult> {
    const { speculate, prediction, ...rest } = opts;
    const speculation = this.speculating.optionsFor(speculate, prediction);
    const result = await generate(this.executor, this.opts.tokenizer, {
      ...rest,
      addBos: opts.addBos ?? this.opts.model.config.addBosToken,
      contextLength: this.opts.contextLength,
      ...(speculation ? { speculation } : {}),
    });
    this.speculating.count(result.speculation);
    return result;
  }

  speculation(): SpeculationReport {
    return this.speculating.report();
  }

  /** The plan new requests use (recomputed if the membership changed since it was made). */
  currentPlan(): Promise<ClusterPlan> {
    return this.planner.currentPlan();
  }

  /** The plan in force, without recomputing. */
  /**
   * A plain decode step alone in flight tells what a hop costs (with others it also waited behind them at busy
   * stages). It is kept and read with the next adaptation tick, off the token's path: read at once, its member
   * lookups cost the coordinator ~0.1 ms a token on stories260K.
   */
  private keepServedStep(rid: string, timing: StepTiming): void {
    const route = this.executor.routeOf(rid);
    // Which steps tell a hop's cost (plain decode rows) is readServedStep's rule, applied when they are read.
    if (!this.opts.observeServedStep || !route || this.executor.activeRequests !== 1) return;
    if (this.servedSteps.length < MAX_SERVED_STEPS) this.servedSteps.push({ timing, route, at: Date.now() });
  }

  private readServedSteps(): void {
    const observe = this.opts.observeServedStep;
    if (!observe || (this.servedSteps.length === 0 && !this.servedRoute)) return;
    const { membership, host } = this.opts;
    const members = new Map([membership.self(), ...membership.members()].map((m) => [m.peerId, m]));
    const member = (p: string) => members.get(p);
    for (const s of this.servedSteps) {
      const reading = readServedStep(s.timing, s.route, host.peerId, member, this.profile);
      if (!reading) continue;
      observe(reading.measuredMs, reading.fixedMs, reading.hops, s.at);
      this.servedRoute = s.route;
    }
    this.servedSteps = [];
    if (this.servedRoute) this.opts.servedRingLatency?.(ringHopLatencyMs(this.servedRoute, host.peerId, member));
  }

  get activePlan(): ClusterPlan | null {
    return this.planner.activePlan;
  }

  /** The tokenizer's token byte strings and trie, for constrained sampling (built once, on first use). */
  vocabulary(): TokenVocabulary {
    this.vocab ??= buildTokenVocabulary(this.opts.tokenizer);
    return this.vocab;
  }

  /** The model's name, as the API reports it. */
  get modelName(): string {
    return this.opts.model.config.name;
  }

  get tokenizer(): Tokenizer {
    return this.opts.tokenizer;
  }

  get model(): ModelFile {
    return this.opts.model;
  }

  get config(): ModelConfig {
    return this.opts.model.config;
  }

  get chatTemplate(): string | null {
    return this.opts.model.chatTemplate;
  }

  get contextLength(): number {
    return this.opts.contextLength;
  }

  /** KV caches this node's stage holds (for requests of any coordinator). */
  kvUsage(): { sessions: number; bytes: number } {
    return { sessions: this.worker.sessionCount, bytes: this.worker.cacheBytes() };
  }

  prefixCache(): PrefixCacheReport {
    return { stage: this.stage.prefixCache.stats(), requests: { ...this.executor.prefixUse } };
  }

  /** This node's stage worker (its requests' KV caches). */
  get worker(): StageWorker {
    return this.stage.worker;
  }

  /** The layer ranges this node holds. */
  get shards(): ShardStore {
    return this.stage.shards;
  }

  /** Bytes of weights this node's shards hold. */
  get heldWeightBytes(): number {
    return this.stage.heldWeightBytes;
  }

  async stop(): Promise<void> {
    if (this.adaptTimer) clearInterval(this.adaptTimer);
    await this.stage.close();
    await this.trainer.stop();
    await this.router.close();
    await this.control.close();
    await this.stage.closeShards();
    await this.opts.model.close();
  }

  private onLeave(member: ClusterMember, reason: string): void {
    this.planner.memberLeft(member.peerId);
    this.control.forget(member.peerId);
    const failed = this.executor.peerLost(member.peerId);
    this.router.forget(member.peerId);
    this.stage.peerLeft(member.peerId, reason);
    if (failed.length) this.opts.log.warn(`${member.name} left mid-request (${reason}): ${failed.length} request(s) affected`);
  }
}

/** The options of `from` named in `keys` that are set (exactOptionalPropertyTypes: an absent option stays absent). */
function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (from[k] !== undefined) out[k] = from[k];
  return out;
}
