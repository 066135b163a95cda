import type { ModelProfile } from '@edge-node/partitioner';
import type { Membership } from '../cluster/membership.js';
import type { ComputeBackend } from '../engine/compute-backend.js';
import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { ModelFile } from '../model/model-file.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RequestChannel, type ChannelEnvelope } from '../network/request-channel.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ErrorFrame, type ReleaseFrame } from './activation-frame.js';
import type { ActivationRouter } from './activation-router.js';
import { ShardStore } from './shard-store.js';
import { StageRunExpectation } from './stage-run-expectation.js';
import type { LayerRange } from '../engine/layer-range.js';
import { PrefixCache } from '../engine/prefix-cache.js';
import { StageWorker, type ComputeSample, type Outgoing } from './stage-worker.js';
import type { KvChunk } from './kv-chunk.js';
import { type CoordinatorLora, fetchLoraSlice, LoraSliceError, parseLoraRead, parseLoraRef, type LoraReadReply, type LoraReadRequest, type StageLoraRef } from './lora-slices.js';
import { parseKvAdopt, parseKvRead, type KvAdoptReply, type KvAdoptRequest, type KvReadReply, type KvReadRequest, type KvSource } from './kv-move-control.js';

/** Control requests between nodes (`/edge-node/control/…`). */
/** `load`: hold [startLayer, endLayer) for the sender's plan; `drop`: the sender's plan no longer uses this node. */
/** `load` with `lora`: apply the coordinator's adapter to those layers (its slice pulled with `lora-read`, lora-slices.ts). */
export type ControlRequest =
  | { op: 'load'; model: string; startLayer: number; endLayer: number; lora?: StageLoraRef }
  | { op: 'drop'; model: string }
  | KvReadRequest
  | KvAdoptRequest
  | LoraReadRequest;
export type LoadReply = { ok: true; weightBytes: number; loadMs: number };
export type ControlReply = LoadReply | KvReadReply | KvAdoptReply | LoraReadReply;
export type ControlEnvelope = ChannelEnvelope<ControlRequest, ControlReply, never>;

export interface StageServerOptions {
  /** This node's --split, announced with its stage so that every node lays out the same plan (plan-owner.ts). */
  split?: number[];
  host: EdgeHost;
  /** The node's router, shared with its coordinator: this stage's results go on through it, and its frames come from it to handle(). */
  router: ActivationRouter;
  membership: Membership;
  log: NodeLogger;
  model: ModelFile;
  compute: ComputeBackend;
  fingerprint: string;
  /** The model's shape as the partitioner prices it (what a stage run is expected to cost). */
  profile: ModelProfile;
  maxRowsPerFrame: number;
  /** The tokenizer's vocabulary, for requests with a grammar (built on first use). */
  vocabulary: () => TokenVocabulary;
  /** Bytes of KV blocks kept across requests (prefix-cache.ts); 0 disables it. */
  prefixCacheBytes?: number;
  /** Reads a piece of a request's KV from another node's stage (a live move's pull; StageControl.readKv). */
  readKv?: (peerId: string, req: KvReadRequest) => Promise<KvChunk>;
  /** This node's LoRA adapter (`--lora`), whose slices it offers to the stages of its plans. */
  lora?: CoordinatorLora;
  /** Reads a piece of a coordinator's LoRA slice (StageControl.readLora). */
  readLora?: (peerId: string, req: LoraReadRequest) => Promise<LoraReadReply>;
  /** After each batched step of this node's stage: rows and requests computed together, and its milliseconds. */
  onStageStep?: (rows: number, requests: number, ms: number) => void;
  /**
   * Each run of this node's stage: measured ms against what the node's profile predicts (for the device watch); on a
   * kind's first run after the profile changed, what the previous profile predicted for it (`expectedByPreviousMs`).
   */
  observeCompute?: (measuredMs: number, expectedMs: number, kind: 'decode' | 'prompt', expectedByPreviousMs?: number, newRange?: boolean, passMs?: number) => void;
  /** A coordinator's load of layers here finished (read, or found held already), after `ms`. */
  onLayersLoaded?: (range: LayerRange, ms: number) => void;
}

/**
 * This node's part of every coordinator's ring: it loads the layer ranges coordinators ask for over
 * `/edge-node/control` (and frees those no plan uses any more), runs the frames it receives through them on the
 * StageWorker, and sends each result on to the next stage. It only runs stages: the answers to requests this node
 * coordinates go from the router to the coordinator, not through here.
 */
export class StageServer {
  readonly worker: StageWorker;
  readonly shards: ShardStore;
  /** KV blocks of earlier requests' prompts and answers, for the requests that continue them. */
  readonly prefixCache: PrefixCache;
  /** Bytes of weights this node's shards hold. */
  heldWeightBytes = 0;
  /** The range each coordinator last asked this node to hold; other ranges are freed once unused. */
  private readonly currentRanges = new Map<string, string>();
  private readonly expectation: StageRunExpectation;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: StageServerOptions) {
    this.shards = new ShardStore(opts.model, opts.compute);
    this.expectation = new StageRunExpectation(opts.profile);
    this.prefixCache = new PrefixCache(opts.prefixCacheBytes ?? 0);
    this.worker = new StageWorker({
      selfId: opts.host.peerId,
      shards: this.shards,
      modelFingerprint: opts.fingerprint,
      maxRowsPerFrame: opts.maxRowsPerFrame,
      log: opts.log,
      ...(opts.onStageStep ? { onStep: opts.onStageStep } : {}),
      onCompute: (sample) => this.observe(sample),
      vocabulary: opts.vocabulary,
      prefixCache: this.prefixCache,
    });
  }

  /** Runs a frame through this node's layers and sends the results on. */
  handle(frame: ActFrame | ReleaseFrame, from: string): void {
    this.worker.handle(frame).then(
      (outs) => {
        for (const o of outs) this.forward(o);
      },
      (err: Error) => this.opts.log.error(`stage failed on a frame from ${from.slice(-8)}: ${err.message}`),
    );
  }

  /** Registers the control protocol's handler (before the host starts) and announces the model to the cluster. */
  async start(): Promise<void> {
    await this.opts.host.handle(PROTOCOLS.control, (stream, info) => {
      new RequestChannel<ControlRequest, ControlReply, never>(stream as unknown as MessageStream<ControlEnvelope, ControlEnvelope>, {
        onRequest: (req) => this.control(req, info.remotePeer),
        parseRequest: (body) => this.parseControl(body),
        onProtocolError: (err) => this.opts.log.warn(`reset control stream from ${info.remotePeer.slice(-8)}: ${err.message}`),
      });
    });
    this.opts.membership.setStageInfo({ model: this.opts.fingerprint, ready: true, ranges: [], ...(this.opts.split ? { split: this.opts.split } : {}) });
    this.sweepTimer = setInterval(() => {
      this.worker.sweepIdle(10 * 60_000);
    }, 60_000);
    this.sweepTimer.unref();
  }

  /** A control request from coordinator `from` (this node's own coordinator calls it directly). */
  async control(req: ControlRequest, from: string): Promise<ControlReply> {
    if (req.model !== this.opts.fingerprint) throw new Error(`this node has model ${this.opts.fingerprint}, not ${req.model}`);
    if (req.op === 'kv-read') return { ok: true, chunk: await this.worker.readKv(req.rid, req, req.start, req.count, req.computing) };
    if (req.op === 'lora-read') {
      if (!this.opts.lora) throw new LoraSliceError('this node serves no LoRA adapter');
      return this.opts.lora.read(req);
    }
    if (req.op === 'kv-adopt') {
      const copiedBytes = await this.worker.adoptKv(req, (src, start, count, computing) => this.pullKv(src, start, count, computing));
      return { ok: true, positions: req.start + req.count, copiedBytes };
    }
    if (req.op === 'drop') {
      // Freed by trimShards once no request of that coordinator uses it.
      this.currentRanges.delete(from);
      return { ok: true, weightBytes: this.heldWeightBytes, loadMs: 0 };
    }
    if (req.op !== 'load') throw new Error(`unknown control operation ${String((req as { op: unknown }).op)}`);
    const t0 = performance.now();
    const range = { startLayer: req.startLayer, endLayer: req.endLayer };
    // This is the range the sender's plan wants from now on (so it is kept while it loads). The old range stays
    // loaded while requests use it (they move at their next token); trimShards frees it then.
    this.currentRanges.set(from, ShardStore.key(range, req.lora?.id));
    if (req.lora) await this.loadAdapted(range, req.lora, from);
    else await this.shards.get(range, this.worker.shardsInUse());
    this.opts.onLayersLoaded?.(range, performance.now() - t0);
    const weightBytes = await this.shards.weightBytes();
    this.heldWeightBytes = weightBytes;
    this.announceRanges();
    return { ok: true, weightBytes, loadMs: performance.now() - t0 };
  }

  /** `range` with the coordinator's adapter: its slice from this node's own adapter, or pulled from the coordinator. */
  private async loadAdapted(range: LayerRange, ref: StageLoraRef, from: string): Promise<void> {
    const local = ref.slice !== null && this.opts.lora?.id === ref.id ? this.opts.lora.sliceBytes(ref.slice) : undefined;
    const read = (start: number, count: number): Promise<LoraReadReply> => {
      if (!this.opts.readLora) throw new LoraSliceError('this node cannot read LoRA slices from other nodes');
      return this.opts.readLora(from, { op: 'lora-read', model: this.opts.fingerprint, sha256: ref.slice!, start, count });
    };
    await this.shards.load(range, this.worker.shardsInUse(), ref.id, async () => {
      const slice = await fetchLoraSlice(ref, range, this.opts.model, local, read);
      if (slice) this.opts.log.info(`LoRA adapter ${ref.id}: slice of layers [${range.startLayer}, ${range.endLayer}) (${slice.adapter.tensors.size} pairs, ${ref.bytes} bytes) ${local ? 'from this node' : `from ${from.slice(-8)}`}, checked`);
      return slice;
    });
  }

  /** A piece of a moving request's KV from the old route's stage `src` (this node's own, or over the control protocol). */
  private pullKv(src: KvSource, start: number, count: number, computing?: number): Promise<KvChunk> {
    if (src.peer === this.opts.host.peerId) return this.worker.readKv(src.rid, src, start, count, computing);
    if (!this.opts.readKv) throw new Error('this node cannot read KV from other nodes');
    return this.opts.readKv(src.peer, { op: 'kv-read', model: this.opts.fingerprint, rid: src.rid, startLayer: src.startLayer, endLayer: src.endLayer, start, count, ...(computing !== undefined ? { computing } : {}) });
  }

  /** Frees ranges no coordinator asked for last and no live request uses. */
  async trimShards(): Promise<void> {
    this.fitPrefixCache();
    const freed = this.shards.trim(new Set(this.currentRanges.values()), this.worker.shardsInUse());
    if (freed.length === 0) return;
    this.heldWeightBytes = await this.shards.weightBytes();
    this.opts.log.info(`freed layers ${freed.map((r) => `[${r.startLayer}, ${r.endLayer})`).join(', ')} (no longer in any plan); ${(this.heldWeightBytes / 1e6).toFixed(0)} MB of weights held`);
    this.announceRanges();
  }

  /** The prefix cache keeps to what the memory budget leaves beside the weights and the live requests' caches. */
  private fitPrefixCache(): void {
    const budget = this.opts.membership.self().load?.memoryBudgetBytes;
    if (budget === undefined || this.prefixCache.configuredBytes === 0) return;
    const before = this.prefixCache.stats().budgetBytes;
    this.prefixCache.fit(budget - this.heldWeightBytes - this.worker.cacheBytes());
    const after = this.prefixCache.stats().budgetBytes;
    if (after !== before && (after === 0 || before === 0 || after < before / 2 || after > before * 2)) {
      this.opts.log.info(`prefix cache: at most ${(after / 2 ** 20).toFixed(0)} MiB now (memory budget ${(budget / 2 ** 20).toFixed(0)} MiB less weights and live KV caches)`);
    }
  }

  /** A node left: its ranges are no longer wanted, and the requests it coordinated here are freed. */
  peerLeft(peerId: string, reason: string): void {
    this.currentRanges.delete(peerId);
    this.worker.dropRequestsOf(peerId, `coordinator left (${reason})`);
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.worker.close();
  }

  /** Frees the shards (after the coordinator has closed its control channels). */
  async closeShards(): Promise<void> {
    await this.shards.close();
  }

  private announceRanges(): void {
    this.opts.membership.setStageInfo({
      model: this.opts.fingerprint,
      ready: true,
      ranges: this.shards.ranges().map((r) => [r.startLayer, r.endLayer]),
      ...(this.opts.split ? { split: this.opts.split } : {}),
    });
  }

  /** Sends a stage's output on; if the next stage is unreachable, tells the coordinator so it can re-route. */
  private forward(o: Outgoing): void {
    this.opts.router.send(o.to, o.frame).catch((err: Error) => {
      this.opts.log.warn(`could not forward ${o.frame.t} for ${o.frame.rid} to ${o.to.slice(-8)}: ${err.message}`);
      if (o.coordinator && o.frame.t === 'act') {
        const lost: ErrorFrame = { t: 'error', v: ACTIVATION_FRAME_VERSION, rid: o.frame.rid, name: 'StageLostError', message: err.message, from: o.to };
        this.opts.router.send(o.coordinator, lost).catch(() => {});
      }
    });
  }

  /** A control request as sent by a peer: a load of a layer range that exists in this model. */
  private parseControl(body: unknown): ControlRequest {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const layers = this.opts.model.config.numLayers;
    const layer = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= layers;
    if (b.op === 'kv-read') return parseKvRead(b, layers, this.opts.router.limits.maxContext);
    if (b.op === 'kv-adopt') return parseKvAdopt(b, layers, this.opts.router.limits);
    if (b.op === 'lora-read') return parseLoraRead(b);
    if (b.op !== 'load' && b.op !== 'drop') throw new Error(`unknown control operation ${JSON.stringify(b.op)?.slice(0, 40)}`);
    if (typeof b.model !== 'string' || b.model.length > 512) throw new Error(`${b.op}: model must be a string`);
    if (b.op === 'drop') return { op: 'drop', model: b.model };
    if (!layer(b.startLayer) || !layer(b.endLayer) || (b.startLayer as number) >= (b.endLayer as number)) {
      throw new Error(`load: layers must be 0 <= startLayer < endLayer <= ${layers}`);
    }
    return { op: 'load', model: b.model, startLayer: b.startLayer as number, endLayer: b.endLayer as number, ...(b.lora === undefined ? {} : { lora: parseLoraRef(b.lora) }) };
  }

  /** A stage run, as the device watch reads it: a decode step or a prompt's slice, against the profile's prediction. */
  private observe(sample: ComputeSample): void {
    if (!this.opts.observeCompute) return;
    const reading = this.expectation.read(sample, this.opts.membership.profile());
    if (reading !== null) this.opts.observeCompute(sample.ms, reading.expectedMs, reading.kind, reading.expectedByPreviousMs, reading.newRange === true, reading.passMs);
  }
}
