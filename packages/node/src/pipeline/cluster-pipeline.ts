import type { ComputeBackend } from '../engine/compute-backend.js';
import { storedBytesPerWeight } from '../model/stored-bytes-per-weight.js';
import { decideReplan, decideRestore, modelProfile, moveCostMs, movedLayers, repricePlan, type ModelProfile, type Plan, type ReplanPolicy } from '@edge-node/partitioner';
import type { DeviceLoad } from '../cluster/device-load.js';
import type { Membership, ClusterMember } from '../cluster/membership.js';
import { generate, type GenerationResult } from '../engine/generate.js';
import type { Generator, GeneratorOptions } from '../engine/generator.js';
import type { StepTiming } from '../engine/bench-probe.js';
import type { ExecutionRequest } from '../engine/token-executor.js';
import type { ModelConfig } from '../model/model-config.js';
import type { ModelFile } from '../model/model-file.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RemoteRequestError, RequestChannel } from '../network/request-channel.js';
import { buildTokenVocabulary, type TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { announcedSplit } from './plan-owner.js';
import { clusterOf, computeClusterPlan, modelFingerprint, modelShapeOf, type ClusterPlan } from './cluster-plan.js';
import { embeddingRequest } from '../engine/embedding-request.js';
import type { EmbedOptions } from '../engine/generator.js';
import { PipelineExecutor } from './pipeline-executor.js';
import type { Route } from './route.js';
import type { MigrationEvent, RecoveryEvent } from './route-change-events.js';
import { StageLostError } from './stage-errors.js';
import { ClusterBenchProbe } from './cluster-bench-probe.js';
import { PlanHistory, describeCause, describeMoves, type PlanChange } from './plan-history.js';
import type { ShardStore } from './shard-store.js';
import { StageServer, type ControlEnvelope, type ControlReply, type ControlRequest } from './stage-server.js';
import type { StageWorker } from './stage-worker.js';
import { PrefixDirectory } from './prefix-directory.js';
import { DEFAULT_PREFIX_CACHE_BYTES, type PrefixCacheReport } from '../engine/prefix-cache.js';
import { DEFAULT_MAX_DRAFT, NodeSpeculation, speculatesByDefault, type DraftSource, type SpeculationReport } from '../engine/speculation.js';

/** Tokens over which moving a running request to a new plan must pay back its replayed prefill. */
const MIGRATION_PAYBACK_TOKENS = 64;

/** A re-plan waits at most this long for its stages to load (a throttled node loads slowly): then it re-decides. */
const REPLAN_LOAD_PATIENCE_MS = 4000;

export interface ClusterPipelineOptions {
  host: EdgeHost;
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
  observeCompute?: (measuredMs: number, expectedMs: number, profile: unknown) => void;
  onMigrate?: (event: MigrationEvent) => void;
  onPlanChange?: (change: PlanChange) => void;
  /** When load changes are worth a new plan (threshold, payback, hysteresis). */
  replanPolicy?: ReplanPolicy;
  /** Bytes of KV blocks this node's stage keeps across requests (`--prefix-cache`; 0 disables). Default 256 MiB. */
  prefixCacheBytes?: number;
  /** Speculative decoding (prompt lookup) for the requests it coordinates that do not say (`--speculate`). Default: on with the kernels, off with tfjs. */
  speculate?: boolean;
  /** A draft model on this node (`--draft-model`): drafts for the requests it coordinates come from it. */
  draftModel?: DraftSource;
  /** How often the coordinator checks whether its plan still pays (ms). Default 1000. */
  adaptIntervalMs?: number;
  /** Rate at which a node loads layers it did not hold, for the cost of a move (MB/s). Default 200. */
  loadMBps?: number;
}

/** What a member announced that decides who takes part in a plan and how: its model and any --split. */
const announced = (m: ClusterMember): string | undefined => (m.stageInfo?.model === undefined ? undefined : `${m.stageInfo.model}|${announcedSplit(m)?.join(',') ?? ''}`);

/** Shape of the requests plans are made for. */
const PLAN_REQUEST = { promptTokens: 128, genTokens: 128 };


/**
 * The coordinator of the requests this node receives, and the Generator the HTTP API serves them through: it plans
 * the ring, has every stage load its layers (this node's own StageServer directly, the others over
 * `/edge-node/control`), re-plans when membership or loads change (adapt()), and runs the generation loop over the
 * PipelineExecutor. Plans are recomputed only between requests, when membership changed.
 */
export class ClusterPipeline implements Generator {
  readonly fingerprint: string;
  /** This node's stage, serving every coordinator's ring (this node's own included). */
  readonly stage: StageServer;
  readonly executor: PipelineExecutor;
  /** `edge-node bench`'s view of the ring: its topology, and runs that report every step. */
  readonly bench: ClusterBenchProbe;
  private plan: ClusterPlan | null = null;
  /** Why the last planning attempt failed (null once a plan works). */
  planError: string | null = null;
  private planning: Promise<ClusterPlan> | null = null;
  private membersChanged = true;
  private readonly controls = new Map<string, Promise<RequestChannel<ControlRequest, ControlReply, never>>>();
  private adaptTimer: NodeJS.Timeout | null = null;
  private readonly maxRows: number;
  private readonly speculating: NodeSpeculation;
  private readonly profile: ModelProfile;
  /** The last plan changes with their reasons. */
  readonly history = new PlanHistory();
  /** Why the plan in force was kept at the last check (or changed). */
  lastDecision = '';
  /** Rate at which stages loaded moved layers in the last re-plans (MB/s): the cost of the next move. */
  private loadMBps: number;
  /** The plan in force priced with the devices' figures at the last check (ms/token), or null before one. */
  predictedNowMs: number | null = null;
  private adapting = false;
  /**
   * Running requests move to this route at their next token (null: they finish on their own). A load-driven change
   * moves them only when it pays within MIGRATION_PAYBACK_TOKENS (a move replays their history as one prefill), and
   * always when the plan in force no longer fits; a change of membership does not move them.
   */
  private moveRunningTo: Route | null = null;
  private lastChangeAt = 0;
  /** Devices' loads when the plan in force was made (to say what changed). */
  private loadsAtPlan = new Map<string, DeviceLoad | null>();
  /** Model (and --split) each member announced (a change of it re-plans at once, unlike a change of load). */
  private readonly announcedModel = new Map<string, string | undefined>();
  /** The plan a load-driven change replaced, the loads under it, and the devices whose load caused the change. */
  private restorable: { former: ClusterPlan; loads: Map<string, DeviceLoad | null>; causes: string[] } | null = null;
  private vocab: TokenVocabulary | null = null;

  constructor(private readonly opts: ClusterPipelineOptions) {
    this.speculating = new NodeSpeculation(opts.speculate ?? speculatesByDefault(opts.compute), DEFAULT_MAX_DRAFT, opts.draftModel ?? null);
    const c = opts.model.config;
    this.fingerprint = modelFingerprint(c);
    // Leave room for the frame's other fields; a prompt larger than this travels in several chunks.
    this.maxRows = Math.max(1, Math.floor((opts.maxFrameBytes * 0.9) / (c.hiddenSize * 4)));
    this.profile = modelProfile(modelShapeOf(c, storedBytesPerWeight(opts.model), opts.compute.kvCache));
    this.loadMBps = opts.loadMBps ?? 200;
    this.stage = new StageServer({
      host: opts.host,
      membership: opts.membership,
      log: opts.log,
      model: opts.model,
      compute: opts.compute,
      fingerprint: this.fingerprint,
      profile: this.profile,
      ...(opts.split ? { split: opts.split } : {}),
      maxRowsPerFrame: this.maxRows,
      contextLength: opts.contextLength,
      vocabulary: () => this.vocabulary(),
      prefixCacheBytes: opts.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES,
      ...(opts.onStageStep ? { onStageStep: opts.onStageStep } : {}),
      ...(opts.observeCompute ? { observeCompute: opts.observeCompute } : {}),
    });
    this.executor = new PipelineExecutor({
      router: this.stage.router,
      routeFor: (r, exclude) => this.routeFor(r, exclude),
      maxRowsPerFrame: this.maxRows,
      log: opts.log,
      isPeerAlive: (p) => p === opts.host.peerId || opts.membership.get(p) !== undefined,
      latestRoute: () => (this.planning ? null : this.moveRunningTo),
      directory: new PrefixDirectory(),
      ...(opts.onMigrate ? { onMigrate: opts.onMigrate } : {}),
      ...(opts.onStep ? { onStep: opts.onStep } : {}),
      ...(opts.onRecovery ? { onRecovery: opts.onRecovery } : {}),
      ...(opts.onRecoveryFailed ? { onRecoveryFailed: opts.onRecoveryFailed } : {}),
    });
    this.bench = new ClusterBenchProbe({
      selfId: opts.host.peerId,
      executor: this.executor,
      tokenizer: opts.tokenizer,
      model: opts.model,
      fingerprint: this.fingerprint,
      members: () => this.everyMember(),
      activeRoute: () => this.plan?.route ?? null,
      contextLength: opts.contextLength,
      maxRowsPerFrame: this.maxRows,
    });
  }

  /** Registers the protocol handlers (before the host starts) and announces the model to the cluster. */
  async start(): Promise<void> {
    await this.stage.start((frame) => this.executor.onFrame(frame));
    const m = this.opts.membership;
    m.events.on('join', (member: ClusterMember) => {
      this.announcedModel.set(member.peerId, announced(member));
      this.membersChanged = true;
    });
    m.events.on('update', (member: ClusterMember) => {
      // A node that loads or drops the model changes who can take part: plan again at the next request. A change
      // of load, profile or links goes through adapt(), which changes the plan only when it pays.
      if (this.announcedModel.get(member.peerId) !== announced(member)) this.membersChanged = true;
      this.announcedModel.set(member.peerId, announced(member));
    });
    m.events.on('leave', (member: ClusterMember, reason: string) => this.onLeave(member, reason));
    this.adaptTimer = setInterval(() => {
      void this.stage.trimShards();
      void this.adapt();
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
  async currentPlan(): Promise<ClusterPlan> {
    if (this.plan && !this.membersChanged) return this.plan;
    if (!this.planning) {
      this.planning = this.replan().finally(() => (this.planning = null));
    }
    return this.planning;
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

  /** The plan in force, without recomputing. */
  get activePlan(): ClusterPlan | null {
    return this.plan;
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
    for (const c of this.controls.values()) (await c.catch(() => null))?.stream.abort(new Error('node stopping'));
    await this.stage.closeShards();
    await this.opts.model.close();
  }

  private async routeFor(_request: ExecutionRequest, exclude: ReadonlySet<string>): Promise<Route> {
    if (exclude.size === 0) return (await this.currentPlan()).route;
    // Mid-request after a loss: plan without the lost nodes now, even if membership has not dropped them yet.
    for (const p of exclude) this.stage.router.forget(p);
    this.membersChanged = true;
    return (await this.replan(exclude)).route;
  }

  private async replan(exclude: ReadonlySet<string> = new Set()): Promise<ClusterPlan> {
    this.membersChanged = false;
    const m = this.opts.membership;
    let next: ClusterPlan;
    try {
      next = computeClusterPlan({
        members: [m.self(), ...m.members()].filter((member) => !exclude.has(member.peerId)),
        config: this.opts.model.config,
        bytesPerWeight: storedBytesPerWeight(this.opts.model),
        kvCache: this.opts.compute.kvCache,
        modelFingerprint: this.fingerprint,
        // The split in force is this node's own or the plan owner's (announced): computeClusterPlan finds it.
        self: this.opts.host.peerId,
        request: this.planRequest(),
        ...(this.plan ? { previous: this.plan.plan as Plan } : {}),
      });
    } catch (err) {
      // The cluster cannot serve (e.g. the model no longer fits): say so in /v1/cluster until a plan works again.
      this.planError = (err as Error).message;
      this.membersChanged = true;
      this.opts.log.error(`no plan: ${this.planError}`);
      throw err;
    }
    this.planError = null;
    if (next.id !== this.plan?.id) {
      const t0 = performance.now();
      await Promise.all(next.stages.map((s) => this.load(s.peerId, s.startLayer, s.endLayer)));
      const loadMs = performance.now() - t0;
      const desc = next.stages.map((s) => `${s.name} [${s.startLayer}, ${s.endLayer})`).join(' → ');
      this.opts.log.info(`plan: ${desc} (${next.owner ? `${next.owner.why}; ` : ''}${next.plan.strategy}; predicted ${next.plan.cost.tokenLatencyMs.toFixed(1)} ms/token; stages loaded in ${loadMs.toFixed(0)} ms)`);
      for (const e of next.plan.excluded) this.opts.log.info(`plan leaves out ${this.nameOf(e.device)}: ${e.reason}`);
      if (this.plan) {
        this.record(this.plan, next, exclude.size > 0 ? 'a stage node was lost' : 'cluster membership changed', loadMs, this.plan.plan.cost.tokenLatencyMs);
        this.dropLeftOut(this.plan, next);
      }
      this.restorable = null;
    }
    // A join leaves running requests on their routes (they are whole); after a loss they recover on their own.
    this.adopt(next, false);
    return next;
  }

  /** Makes `next` the plan in force (running requests move to it at their next token). */
  private adopt(next: ClusterPlan, moveRunning = true): void {
    this.plan = next;
    this.moveRunningTo = moveRunning ? next.route : null;
    this.loadsAtPlan = new Map(this.everyMember().map((m) => [m.peerId, m.load]));
    this.opts.onPlan?.(next);
  }

  /** A member's name for the log (its peer id's tail when it is gone). */
  private nameOf(peerId: string): string {
    return this.everyMember().find((m) => m.peerId === peerId)?.name ?? peerId.slice(-8);
  }

  private everyMember(): ClusterMember[] {
    const m = this.opts.membership;
    return [m.self(), ...m.members()];
  }

  private record(before: ClusterPlan, after: ClusterPlan, cause: string, loadMs: number, predictedBeforeMs: number): PlanChange {
    const now = Date.now();
    const moves = describeMoves(before.stages, after.stages);
    const predictedAfterMs = after.plan.cost.tokenLatencyMs;
    const change: PlanChange = {
      at: now,
      from: before.id,
      to: after.id,
      cause,
      moves,
      movedLayers: movedLayers(before.plan, after.plan),
      predictedBeforeMs,
      predictedAfterMs,
      loadMs,
      reason: `${cause}; ${moves}; predicted ${predictedBeforeMs.toFixed(1)} → ${predictedAfterMs.toFixed(1)} ms/token`,
    };
    this.history.add(change);
    this.lastChangeAt = now;
    this.opts.onPlanChange?.(change);
    return change;
  }

  /**
   * The coordinator's check, every second: priced with the devices' figures of now, does another plan beat the one
   * in force by enough to pay for moving layers (decideReplan)? If so, the new stages load their layers while the
   * old route keeps serving; then the new plan takes over and running requests move to it at their next token.
   */
  async adapt(): Promise<PlanChange | null> {
    const current = this.plan;
    // A split given by hand (here or on the plan owner) stays as given.
    if (this.adapting || this.planning || this.membersChanged || !current || current.owner?.split) return null;
    this.adapting = true;
    try {
      const members = this.everyMember().filter((m) => m.stageInfo?.model === this.fingerprint);
      let candidate: ClusterPlan;
      try {
        candidate = computeClusterPlan({
          members,
          config: this.opts.model.config,
          // Priced like the plan in force (stored bytes, the node's KV type), or a move compares two different models.
          bytesPerWeight: storedBytesPerWeight(this.opts.model),
          kvCache: this.opts.compute.kvCache,
          modelFingerprint: this.fingerprint,
          self: this.opts.host.peerId,
          request: this.planRequest(),
          previous: current.plan,
        });
      } catch (err) {
        this.lastDecision = `no plan fits the devices' figures of now: ${(err as Error).message}`;
        return null;
      }
      const now = repricePlan(current.plan, this.profile, clusterOf(members), this.planRequest());
      if (!now.cost) return null; // a stage's node is gone: membership's re-plan handles it
      this.predictedNowMs = now.cost.tokenLatencyMs;
      const loads = new Map(members.map((m) => [m.peerId, m.load?.slowdown ?? 1]));
      const slowdownOf = (id: string) => loads.get(id) ?? 1;
      let decision = decideReplan(
        {
          currentMs: now.cost.tokenLatencyMs,
          currentFits: now.fitsInMemory,
          candidateMs: candidate.plan.cost.tokenLatencyMs,
          movedLayers: candidate.id === current.id ? 0 : Math.max(1, movedLayers(current.plan, candidate.plan)),
          moveMs: moveCostMs(current.plan, candidate.plan, this.profile, this.loadMBps, slowdownOf),
          sinceLastChangeMs: Date.now() - this.lastChangeAt,
        },
        this.opts.replanPolicy,
      );
      let restoring = false;
      if (!decision.replan && this.restorable && this.restorable.former.id !== current.id) {
        const { former, loads, causes } = this.restorable;
        const byId = new Map(members.map((m) => [m.peerId, m]));
        const causeCleared = causes.every((id) => {
          const was = loads.get(id) ?? null;
          const load = byId.get(id)?.load ?? null;
          return (load?.slowdown ?? 1) <= (was?.slowdown ?? 1) && (load?.memoryBudgetBytes ?? Infinity) >= (was?.memoryBudgetBytes ?? Infinity);
        });
        const back = repricePlan(former.plan, this.profile, clusterOf(members), this.planRequest());
        const restore = decideRestore(
          { currentMs: now.cost.tokenLatencyMs, formerMs: back.cost?.tokenLatencyMs ?? Infinity, formerFits: back.cost !== null && back.fitsInMemory, causeCleared, sinceLastChangeMs: Date.now() - this.lastChangeAt },
          this.opts.replanPolicy,
        );
        if (restore.replan) {
          // The former plan, re-priced: its figures are those of now.
          candidate = { ...former, plan: { ...former.plan, cost: back.cost!, stages: former.plan.stages } };
          decision = restore;
          restoring = true;
        } else if (causeCleared) {
          decision = { replan: false, reason: `${decision.reason}; ${restore.reason}` };
        }
      }
      this.lastDecision = decision.reason;
      if (!decision.replan) return null;
      const cause = describeCause(Date.now(), members.map((m) => ({ peerId: m.peerId, name: m.name, load: m.load })), this.loadsAtPlan);
      const t0 = performance.now();
      // The old route serves while the new stages load. A stage on a busy device may load far slower than
      // predicted (its slowdown was still rising): past the patience, drop this candidate and decide again with
      // fresher figures; the load goes on in the background.
      // A plan that no longer fits must be left whatever the wait.
      const patience = now.fitsInMemory ? Math.max(REPLAN_LOAD_PATIENCE_MS, 3 * moveCostMs(current.plan, candidate.plan, this.profile, this.loadMBps, slowdownOf)) : Infinity;
      let timer: NodeJS.Timeout | undefined;
      try {
        const loading = candidate.stages.map((s) => this.load(s.peerId, s.startLayer, s.endLayer).then(() => s));
        const loaded = await Promise.race([
          Promise.all(loading).then(() => true),
          ...(Number.isFinite(patience) ? [new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), patience)))] : []),
        ]);
        if (!loaded) {
          // A late load must not pin layers on a node the plan in force does not use.
          for (const l of loading) {
            void l.then((s) => {
              if (!this.plan?.stages.some((x) => x.peerId === s.peerId)) this.dropOn(s.peerId, s.name);
            }).catch(() => {});
          }
          // The stages keep the ranges of the plan in force (they are loaded: this only marks them current again).
          for (const st of current.stages) void this.load(st.peerId, st.startLayer, st.endLayer).catch(() => {});
          this.lastDecision = `re-plan abandoned: its stages did not load within ${(patience / 1000).toFixed(1)} s`;
          this.opts.log.warn(`${this.lastDecision} (${candidate.id}); deciding again`);
          return null;
        }
      } catch (err) {
        this.opts.log.warn(`re-plan abandoned, a stage could not load its layers: ${(err as Error).message}`);
        return null;
      } finally {
        clearTimeout(timer);
      }
      if (this.plan !== current) return null; // membership re-planned meanwhile
      const loadMs = performance.now() - t0;
      this.noteLoadRate(current.plan, candidate.plan, loadMs);
      const loadsBefore = this.loadsAtPlan;
      this.dropLeftOut(current, candidate);
      const change = this.record(current, candidate, cause, loadMs, now.cost.tokenLatencyMs);
      this.predictedNowMs = candidate.plan.cost.tokenLatencyMs;
      const gainMs = now.cost.tokenLatencyMs - candidate.plan.cost.tokenLatencyMs;
      this.adopt(candidate, !now.fitsInMemory || gainMs * MIGRATION_PAYBACK_TOKENS > candidate.plan.cost.ttftMs);
      if (restoring) this.restorable = null;
      else if (!this.restorable) {
        // Remember what to go back to once the devices that caused this change are quiet again.
        const causes = members.filter((m) => (m.load?.slowdown ?? 1) > (loadsBefore.get(m.peerId)?.slowdown ?? 1) || (m.load?.memoryBudgetBytes ?? Infinity) < (loadsBefore.get(m.peerId)?.memoryBudgetBytes ?? Infinity)).map((m) => m.peerId);
        if (causes.length > 0) this.restorable = { former: current, loads: loadsBefore, causes };
      }
      const desc = candidate.stages.map((s) => `${s.name} [${s.startLayer}, ${s.endLayer})`).join(' → ');
      this.opts.log.info(`re-plan: ${change.reason} (${decision.reason}); plan ${desc}, layers loaded in ${loadMs.toFixed(0)} ms`);
      for (const e of candidate.plan.excluded) this.opts.log.info(`plan leaves out ${this.nameOf(e.device)}: ${e.reason}`);
      return change;
    } finally {
      this.adapting = false;
    }
  }

  /** Learns the rate at which this cluster's stages load layers (the slowest stage of a move decides). */
  private noteLoadRate(before: Plan, after: Plan, loadMs: number): void {
    const predictedMs = moveCostMs(before, after, this.profile, 1); // at 1 MB/s: equals the megabytes moved
    if (predictedMs <= 0 || loadMs < 50) return;
    const observed = Math.min(2000, Math.max(5, predictedMs / loadMs));
    this.loadMBps = 0.5 * this.loadMBps + 0.5 * observed;
  }

  /** Tells the nodes of `before` that `after` leaves out to free what they held for this coordinator. */
  private dropLeftOut(before: ClusterPlan, after: ClusterPlan): void {
    const kept = new Set(after.stages.map((s) => s.peerId));
    for (const s of before.stages) if (!kept.has(s.peerId)) this.dropOn(s.peerId, s.name);
  }

  private dropOn(peerId: string, name: string): void {
    if (peerId === this.opts.host.peerId) {
      void this.stage.control({ op: 'drop', model: this.fingerprint }, peerId);
      return;
    }
    void this.controlChannel(peerId)
      .then((c) => c.request({ op: 'drop', model: this.fingerprint }, { timeoutMs: 30_000 }))
      .catch((err: Error) => this.opts.log.debug(`could not tell ${name} to drop its layers: ${err.message}`));
  }

  private planRequest() {
    return { ...PLAN_REQUEST, contextTokens: this.opts.contextLength, concurrency: this.opts.concurrency };
  }

  /** Has a node load [start, end) (this node directly, others over the control protocol). */
  private async load(peerId: string, startLayer: number, endLayer: number): Promise<void> {
    if (peerId === this.opts.host.peerId) {
      await this.stage.control({ op: 'load', model: this.fingerprint, startLayer, endLayer }, peerId);
      return;
    }
    try {
      const channel = await this.controlChannel(peerId);
      await channel.request({ op: 'load', model: this.fingerprint, startLayer, endLayer }, { timeoutMs: 300_000 });
    } catch (err) {
      // A node that cannot take its stage is as good as lost: the request re-plans without it.
      if (err instanceof RemoteRequestError) throw err;
      throw new StageLostError(peerId, `could not load layers [${startLayer}, ${endLayer}) (${(err as Error).message})`);
    }
  }

  private controlChannel(peerId: string): Promise<RequestChannel<ControlRequest, ControlReply, never>> {
    let c = this.controls.get(peerId);
    if (!c) {
      c = this.opts.host
        .openMessageStream<ControlEnvelope, ControlEnvelope>(peerId, PROTOCOLS.control)
        .then((stream) => {
          const channel = new RequestChannel<ControlRequest, ControlReply, never>(stream, { timeoutMs: 300_000 });
          stream.onClose(() => {
            if (this.controls.get(peerId) === c) this.controls.delete(peerId);
          });
          return channel;
        });
      this.controls.set(peerId, c);
      c.catch(() => this.controls.delete(peerId));
    }
    return c;
  }

  private onLeave(member: ClusterMember, reason: string): void {
    this.membersChanged = true;
    this.controls.delete(member.peerId);
    this.announcedModel.delete(member.peerId);
    const failed = this.executor.peerLost(member.peerId);
    this.stage.peerLeft(member.peerId, reason);
    if (failed.length) this.opts.log.warn(`${member.name} left mid-request (${reason}): ${failed.length} request(s) affected`);
  }
}
