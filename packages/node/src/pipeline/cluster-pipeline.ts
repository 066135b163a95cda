import type { Plan } from '@edge-node/partitioner';
import type { Membership, ClusterMember } from '../cluster/membership.js';
import { generate, type GenerateOptions, type GenerationResult } from '../engine/generate.js';
import type { ExecutionRequest } from '../engine/token-executor.js';
import type { ModelFile } from '../model/model-file.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RemoteRequestError, RequestChannel, type ChannelEnvelope } from '../network/request-channel.js';
import { buildTokenVocabulary, type TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ACTIVATION_FRAME_VERSION, type ErrorFrame, type FrameLimits } from './activation-frame.js';
import { ActivationRouter } from './activation-router.js';
import { computeClusterPlan, modelFingerprint, type ClusterPlan } from './cluster-plan.js';
import { PipelineExecutor, StageLostError, type RecoveryEvent, type Route, type StepTiming } from './pipeline-executor.js';
import { ShardStore } from './shard-store.js';
import { StageWorker, type Outgoing } from './stage-worker.js';

/** Control requests between nodes (`/edge-node/control/…`). */
export type ControlRequest = { op: 'load'; model: string; startLayer: number; endLayer: number };
export type ControlReply = { ok: true; weightBytes: number; loadMs: number };
type ControlEnvelope = ChannelEnvelope<ControlRequest, ControlReply, never>;

export interface ClusterPipelineOptions {
  host: EdgeHost;
  membership: Membership;
  log: NodeLogger;
  model: ModelFile;
  tokenizer: Tokenizer;
  /** Layers per node in name order, instead of the partitioner's plan. */
  split?: number[];
  /** Context limit per request (prompt + generated). */
  contextLength: number;
  /** Requests the plan reserves KV memory for. */
  concurrency: number;
  maxFrameBytes: number;
  onPlan?: (plan: ClusterPlan) => void;
  onStep?: (rid: string, timing: StepTiming) => void;
  onRecovery?: (event: RecoveryEvent) => void;
  onRecoveryFailed?: (requestId: string, lostPeer: string, error: Error) => void;
}

export type ClusterGenerateOptions = Omit<GenerateOptions, 'addBos' | 'contextLength'> & { addBos?: boolean };

/**
 * Everything pipeline on one node: it serves its stage to the cluster (StageWorker behind the ActivationRouter), and
 * coordinates the requests it receives (plans the ring, has every stage load its layers, runs the generation loop
 * over the PipelineExecutor). Plans are recomputed only between requests, when membership changed.
 */
export class ClusterPipeline {
  readonly fingerprint: string;
  readonly router: ActivationRouter;
  readonly worker: StageWorker;
  readonly executor: PipelineExecutor;
  readonly shards: ShardStore;
  private plan: ClusterPlan | null = null;
  /** Why the last planning attempt failed (null once a plan works). */
  planError: string | null = null;
  private planning: Promise<ClusterPlan> | null = null;
  private membersChanged = true;
  private readonly controls = new Map<string, Promise<RequestChannel<ControlRequest, ControlReply, never>>>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly maxRows: number;
  private vocab: TokenVocabulary | null = null;

  constructor(private readonly opts: ClusterPipelineOptions) {
    const c = opts.model.config;
    this.fingerprint = modelFingerprint(c);
    this.shards = new ShardStore(opts.model);
    // Leave room for the frame's other fields; a prompt larger than this travels in several chunks.
    this.maxRows = Math.max(1, Math.floor((opts.maxFrameBytes * 0.9) / (c.hiddenSize * 4)));
    this.router = new ActivationRouter(opts.host, () => this.limits(), opts.log);
    this.worker = new StageWorker({
      selfId: opts.host.peerId,
      shards: this.shards,
      modelFingerprint: this.fingerprint,
      maxRowsPerFrame: this.maxRows,
      log: opts.log,
      vocabulary: () => this.vocabulary(),
    });
    this.executor = new PipelineExecutor({
      router: this.router,
      routeFor: (r, exclude) => this.routeFor(r, exclude),
      maxRowsPerFrame: this.maxRows,
      log: opts.log,
      isPeerAlive: (p) => p === opts.host.peerId || opts.membership.get(p) !== undefined,
      ...(opts.onStep ? { onStep: opts.onStep } : {}),
      ...(opts.onRecovery ? { onRecovery: opts.onRecovery } : {}),
      ...(opts.onRecoveryFailed ? { onRecoveryFailed: opts.onRecoveryFailed } : {}),
    });
  }

  /** Registers the protocol handlers (before the host starts) and announces the model to the cluster. */
  async start(): Promise<void> {
    await this.router.start((frame, from) => {
      if (frame.t === 'act' || frame.t === 'release') {
        this.worker.handle(frame).then(
          (outs) => {
            for (const o of outs) this.forward(o);
          },
          (err: Error) => this.opts.log.error(`stage failed on a frame from ${from.slice(-8)}: ${err.message}`),
        );
      } else {
        this.executor.onFrame(frame);
      }
    });
    await this.opts.host.handle(PROTOCOLS.control, (stream, info) => {
      new RequestChannel<ControlRequest, ControlReply, never>(stream as unknown as MessageStream<ControlEnvelope, ControlEnvelope>, {
        onRequest: (req) => this.onControl(req),
        parseRequest: (body) => this.parseControl(body),
        onProtocolError: (err) => this.opts.log.warn(`reset control stream from ${info.remotePeer.slice(-8)}: ${err.message}`),
      });
    });
    const m = this.opts.membership;
    m.events.on('join', () => (this.membersChanged = true));
    m.events.on('update', () => (this.membersChanged = true));
    m.events.on('leave', (member: ClusterMember, reason: string) => this.onLeave(member, reason));
    m.setStageInfo({ model: this.fingerprint, ready: true, ranges: [] });
    this.sweepTimer = setInterval(() => this.worker.sweepIdle(10 * 60_000), 60_000);
    this.sweepTimer.unref();
  }

  /** Runs one request through the cluster. */
  generate(opts: ClusterGenerateOptions): Promise<GenerationResult> {
    return generate(this.executor, this.opts.tokenizer, {
      ...opts,
      addBos: opts.addBos ?? this.opts.model.config.addBosToken,
      contextLength: this.opts.contextLength,
    });
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

  /** The plan in force, without recomputing. */
  get activePlan(): ClusterPlan | null {
    return this.plan;
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.worker.close();
    await this.router.close();
    for (const c of this.controls.values()) (await c.catch(() => null))?.stream.abort(new Error('node stopping'));
    await this.shards.close();
    await this.opts.model.close();
  }

  /** Sends a stage's output on; if the next stage is unreachable, tells the coordinator so it can re-route. */
  private forward(o: Outgoing): void {
    this.router.send(o.to, o.frame).catch((err: Error) => {
      this.opts.log.warn(`could not forward ${o.frame.t} for ${o.frame.rid} to ${o.to.slice(-8)}: ${err.message}`);
      if (o.coordinator && o.frame.t === 'act') {
        const lost: ErrorFrame = { t: 'error', v: ACTIVATION_FRAME_VERSION, rid: o.frame.rid, name: 'StageLostError', message: err.message, from: o.to };
        this.router.send(o.coordinator, lost).catch(() => {});
      }
    });
  }

  private limits(): FrameLimits {
    const c = this.opts.model.config;
    return { maxRows: this.maxRows, hiddenSize: c.hiddenSize, vocabSize: c.vocabSize, maxRoute: 64, maxContext: this.opts.contextLength };
  }

  private async routeFor(_request: ExecutionRequest, exclude: ReadonlySet<string>): Promise<Route> {
    if (exclude.size === 0) return (await this.currentPlan()).route;
    // Mid-request after a loss: plan without the lost nodes now, even if membership has not dropped them yet.
    for (const p of exclude) this.router.forget(p);
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
        modelFingerprint: this.fingerprint,
        ...(this.opts.split ? { split: this.opts.split } : {}),
        request: { promptTokens: 128, genTokens: 128, contextTokens: this.opts.contextLength, concurrency: this.opts.concurrency },
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
      const desc = next.stages.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`).join(' → ');
      this.opts.log.info(`plan: ${desc} (${next.plan.strategy}; predicted ${next.plan.cost.tokenLatencyMs.toFixed(1)} ms/token; stages loaded in ${(performance.now() - t0).toFixed(0)} ms)`);
      for (const e of next.plan.excluded) this.opts.log.info(`plan leaves out ${e.device.slice(-8)}: ${e.reason}`);
    }
    this.plan = next;
    this.opts.onPlan?.(next);
    return next;
  }

  /** Has a node load [start, end) (this node directly, others over the control protocol). */
  private async load(peerId: string, startLayer: number, endLayer: number): Promise<void> {
    if (peerId === this.opts.host.peerId) {
      await this.onControl({ op: 'load', model: this.fingerprint, startLayer, endLayer });
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

  /** A control request as sent by a peer: a load of a layer range that exists in this model. */
  private parseControl(body: unknown): ControlRequest {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const layers = this.opts.model.config.numLayers;
    const layer = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= layers;
    if (b.op !== 'load') throw new Error(`unknown control operation ${JSON.stringify(b.op)?.slice(0, 40)}`);
    if (typeof b.model !== 'string' || b.model.length > 512) throw new Error('load: model must be a string');
    if (!layer(b.startLayer) || !layer(b.endLayer) || (b.startLayer as number) >= (b.endLayer as number)) {
      throw new Error(`load: layers must be 0 <= startLayer < endLayer <= ${layers}`);
    }
    return { op: 'load', model: b.model, startLayer: b.startLayer as number, endLayer: b.endLayer as number };
  }

  private async onControl(req: ControlRequest): Promise<ControlReply> {
    if (req.op !== 'load') throw new Error(`unknown control operation ${String((req as { op: unknown }).op)}`);
    if (req.model !== this.fingerprint) throw new Error(`this node has model ${this.fingerprint}, not ${req.model}`);
    const t0 = performance.now();
    await this.shards.get({ startLayer: req.startLayer, endLayer: req.endLayer });
    const weightBytes = await this.shards.weightBytes();
    this.opts.membership.setStageInfo({
      model: this.fingerprint,
      ready: true,
      ranges: this.shards.ranges().map((r) => [r.startLayer, r.endLayer]),
    });
    return { ok: true, weightBytes, loadMs: performance.now() - t0 };
  }

  private onLeave(member: ClusterMember, reason: string): void {
    this.membersChanged = true;
    this.router.forget(member.peerId);
    this.controls.delete(member.peerId);
    const failed = this.executor.peerLost(member.peerId);
    this.worker.dropRequestsOf(member.peerId, `coordinator left (${reason})`);
    if (failed.length) this.opts.log.warn(`${member.name} (${member.peerId.slice(-8)}) left mid-request (${reason}): ${failed.length} request(s) affected`);
  }
}
