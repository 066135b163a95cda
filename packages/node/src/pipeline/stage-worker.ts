import { createRequestSampler } from '../engine/request-sampler.js';
import type { Sampler } from '../engine/sampler.js';
import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import { BatchScheduler, type ComputeSample, type RowsToCompute } from '../engine/batch-scheduler.js';
import type { ForwardShard, ShardInput, ShardKvCache, ShardOutput } from '../engine/forward-shard.js';
import type { NodeLogger } from '../network/node-logger.js';
import { ACTIVATION_FRAME_VERSION, stepStart, type ActFrame, type ActivationFrame, type ErrorFrame, type ReleaseFrame, type RequestOpening, type TokenFrame } from './activation-frame.js';
import { verificationAnswer, wireLogprob } from './token-answer.js';
import { ShardStore } from './shard-store.js';
import { MeanPool } from '../engine/mean-pool.js';
import { PrefixMissError, type PrefixCache } from '../engine/prefix-cache.js';
import type { LayerRange } from '../engine/layer-range.js';
import { exportKv, KvMoveError, movableCache, type KvChunk } from './kv-chunk.js';
import { pullKv } from './kv-pull.js';
import { checkCoverage, type KvAdoptRequest, type KvSource } from './kv-move-control.js';
import { PositionWaits } from './position-waits.js';
import { stageAdoptLine, stageStepLine, stageReadLine, wallMs } from './switch-phases.js';

/** Reads a piece of a moving request's KV from a stage of its old route (`computing`: see KvAdoptRequest). */
export type KvPull = (source: KvSource, start: number, count: number, computing?: number) => Promise<KvChunk>;

/** A frame to send, and to whom (a peer id; possibly this node itself). */
export interface Outgoing {
  to: string;
  frame: ActivationFrame;
  /** The request's coordinator, to tell if `to` cannot be reached. */
  coordinator?: string;
}

interface Session {
  opening: RequestOpening;
  stage: number;
  shard: ForwardShard;
  shardKey: string;
  cache: ShardKvCache;
  /** Only on the last stage. */
  sampler: Sampler | null;
  /** Only on the last stage of an embedding request: the prompt's rows pooled so far. */
  pool: MeanPool | null;
  /** Step being received, and whether its final chunk has arrived. */
  step: number;
  stepDone: boolean;
  /**
   * Lowest position the next step may start at. Normally the cache's length; after a verification step, its first
   * row + 1: the rows of drafted tokens the last stage rejected are dropped when the next step starts before them.
   */
  floor: number;
  lastActive: number;
  /** Opened by a live move and no step run yet (its first step waits for the switch's part; its phases are logged). */
  movedIn?: boolean;
  /** The switch's part of its move is in: the positions copied count for its steps. */
  switched?: boolean;
  /** Position of the last step computed here (a row before it is certain: no later rollback drops it). */
  computedFrom?: number;
  /**
   * A verification in parts, on the last stage: every row's logits, each part's put in its place as it is computed;
   * and on every stage the milliseconds the parts before the final one took (the step's time is their sum).
   */
  partLogits?: Float32Array;
  partMs?: number;
  /** Steps after its first one on this route whose phases are logged too (to compare the first with). */
  stepsToLog?: number;
}

export type { ComputeSample } from '../engine/batch-scheduler.js';

/** A request-level failure on this stage: reported to the coordinator as an error frame. */
export class StageError extends Error {
  override name = 'StageError';
}

export interface StageWorkerOptions {
  selfId: string;
  shards: ShardStore;
  /** Fingerprint of the local model; requests for another model are refused. */
  modelFingerprint: string;
  /** Most rows per outgoing hidden-state frame (keeps frames under the frame limit). */
  maxRowsPerFrame: number;
  log: NodeLogger;
  /** Most prompt rows one step computes (a longer prompt is spread over steps, between other requests' tokens). Default 32. */
  computeRows?: number;
  /** Most rows one step computes in all (decode rows of many requests plus prompt slices). Default 64. */
  batchRows?: number;
  /** Called after each step with its rows and requests (for metrics). */
  onStep?: (rows: number, requests: number, ms: number) => void;
  /** Called after each run of this node's layers (the device watch compares it with the profile's prediction). */
  onCompute?: (sample: ComputeSample) => void;
  /** The tokenizer's byte strings, for requests with a grammar (built once, on first use). */
  vocabulary?: () => TokenVocabulary;
  /** Called whenever the set of live sessions changes (for metrics). */
  onSessionsChanged?: (count: number) => void;
  /** KV blocks kept across requests (prefix-cache.ts); without it every request computes its whole prompt. */
  prefixCache?: PrefixCache;
}

/**
 * One node's part of the pipeline: runs incoming activation frames through its layers with a KV cache per request,
 * and says where the results go (the next stage, or — from the last stage — a sampled token to the coordinator).
 *
 * Continuous batching: frames wait in arrival order, and each step takes the next frame of every waiting request —
 * decode rows of many requests and a slice of at most `computeRows` rows of each prompt, `batchRows` rows in all —
 * through the layers in one pass (`forwardBatch`: every weight read once for all of them). Requests join and leave
 * between steps; a long prompt is spread over several steps, so tokens of the requests already streaming keep
 * coming. Each row's result is the same as if its request ran alone. The node's other work (network, HTTP,
 * heartbeats) runs between steps.
 */
export class StageWorker {
  private readonly sessions = new Map<string, Session>();
  private readonly scheduler: BatchScheduler;
  /** Steps that came before the last positions of their request's live move (see adoptKv). */
  private readonly waits = new PositionWaits(10_000);
  /** A move's reads of positions this stage is still computing (see readKv). */
  private readonly computed = new PositionWaits(10_000);
  /** The parts of each request's move being taken, in the order asked (see adoptKv). */
  private readonly adopting = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: StageWorkerOptions) {
    this.scheduler = new BatchScheduler({
      ...(opts.computeRows !== undefined ? { promptRows: opts.computeRows } : {}),
      ...(opts.batchRows !== undefined ? { batchRows: opts.batchRows } : {}),
      ...(opts.onStep ? { onStep: opts.onStep } : {}),
      ...(opts.onCompute ? { onCompute: opts.onCompute } : {}),
      onError: (err) => opts.log.error(`stage step failed: ${err.message}`),
    });
  }

  /** Queues a frame; resolves with the frames it produced once it has run (errors become error frames). */
  handle(frame: ActFrame | ReleaseFrame): Promise<Outgoing[]> {
    // A release follows the request's frames already queued.
    if (frame.t === 'release') return this.scheduler.turn(frame.rid).then(() => this.release(frame), () => []);
    const adopted = this.sessions.get(frame.rid);
    if (adopted?.movedIn && !frame.open) return this.firstMovedStep(adopted, frame);
    if (adopted?.stepsToLog && !frame.open) {
      adopted.stepsToLog--;
      return this.loggedStep(frame, wallMs());
    }
    return this.queue(frame);
  }

  /** The first step of a request moved here: it may come before the last positions of its copy (it waits), its phases logged. */
  private async firstMovedStep(s: Session, frame: ActFrame): Promise<Outgoing[]> {
    s.movedIn = false;
    const arrived = wallMs();
    if (!s.switched || frame.pos > s.cache.length) await this.waits.until(frame.rid, frame.pos);
    // The switch's part never came (timed out): the step is dropped rather than served with the pre-copy's opening.
    if (this.sessions.get(frame.rid) === s && !s.switched) this.free(frame.rid);
    s.stepsToLog = 2;
    return this.loggedStep(frame, arrived);
  }

  /** A step of a request moved here, its phases logged (switch-phases.ts). */
  private async loggedStep(frame: ActFrame, arrived: number): Promise<Outgoing[]> {
    const ready = wallMs();
    let started = ready;
    const outs = await this.queue(frame, () => (started = wallMs()));
    this.opts.log.debug(stageStepLine({ rid: frame.rid, step: frame.step, arrived, ready, started, computed: wallMs() }));
    return outs;
  }

  private queue(frame: ActFrame, onStart?: () => void): Promise<Outgoing[]> {
    let session: Session | undefined;
    const start = async (): Promise<RowsToCompute> => {
      onStart?.();
      session = await this.begin(frame);
      const embedding = session.opening.embed === true;
      // A verification samples every row (its first, then each drafted token's successor), in every part.
      const logits = embedding ? false : frame.draft ? ('all' as const) : frame.final;
      return { shard: session.shard, cache: session.cache, input: this.inputOf(frame, session), logits, embedding };
    };
    return this.scheduler.submit({ request: frame.rid, rows: frame.n, start }).then(
      ({ output, computeMs }) => {
        const outs = this.emit(frame, session!, output, computeMs);
        // A later part of a verification leaves its step's rows after the first uncertain (still maybe rejected).
        const first = stepStart(frame);
        session!.computedFrom = first;
        this.computed.reached(frame.rid, first + 1);
        return outs;
      },
      (err: unknown) => this.failure(frame, session, err),
    );
  }

  /** The frame's rows, as its shard takes them. */
  private inputOf(frame: ActFrame, s: Session): ShardInput {
    if (s.shard.isFirst) return { kind: 'tokens', tokens: frame.tokens ?? fail('the first stage needs token ids') };
    return { kind: 'hidden', hidden: frame.hidden ?? fail('this stage needs hidden states'), n: frame.n };
  }

  /** Opens the request on its first frame and checks the frame's place in it. */
  private async begin(frame: ActFrame): Promise<Session> {
    let session = this.sessions.get(frame.rid);
    if (frame.open) {
      if (session) throw new StageError(`request ${frame.rid} is already open on this stage`);
      session = await this.openSession(frame.rid, frame.stage, frame.open);
      const prefix = frame.open.prefix ?? 0;
      if (prefix > 0) {
        // The coordinator's directory says this stage keeps these positions: copy them, or say it no longer does.
        const cache = this.opts.prefixCache;
        if (!cache) throw new PrefixMissError(prefix, 0);
        cache.restore(session.shardKey, frame.open.promptTokens, prefix, session.cache);
      }
    }
    if (!session) throw new StageError(`request ${frame.rid} is not open on this stage (it may have been freed)`);
    if (frame.stage !== session.stage) throw new StageError(`frame for stage ${frame.stage} arrived at stage ${session.stage}`);
    // Step order: chunks of the current step, or the first chunk of the next one once the current is complete.
    const nextStep = session.stepDone ? session.step + 1 : session.step;
    if (frame.step !== nextStep) throw new StageError(`expected step ${nextStep}, got step ${frame.step}`);
    const before = frame.rowsBefore ?? 0;
    if (frame.step > 0 && (before > 0) === session.stepDone) throw new StageError(before > 0 ? `a later part of step ${frame.step} came before its first` : `step ${frame.step} began again before its last part`);
    if (frame.pos !== session.cache.length) {
      // The step after a verification starts after the rows its last stage accepted: the rest are dropped here, on
      // every stage, before anything reads them (and before a release could keep them in the prefix cache).
      const rollback = frame.step > 0 && before === 0 && frame.pos >= session.floor && frame.pos < session.cache.length;
      if (!rollback) throw new StageError(`expected position ${session.cache.length}, got ${frame.pos}`);
      session.cache.truncate(frame.pos);
    }
    if (session.shard.isFirst ? !frame.tokens : !frame.hidden) throw new StageError(session.shard.isFirst ? 'the first stage needs token ids' : 'this stage needs hidden states');
    session.step = frame.step;
    session.stepDone = frame.final;
    session.floor = frame.draft ? stepStart(frame) + 1 : frame.pos + frame.n;
    session.lastActive = Date.now();
    return session;
  }

  /** An error frame to the request's coordinator (and the request freed here). */
  private failure(frame: ActFrame, session: Session | undefined, err: unknown): Outgoing[] {
    // A frame refused before its turn began (out of order, a bad position) still reaches its request's coordinator.
    const opening = session?.opening ?? this.sessions.get(frame.rid)?.opening ?? frame.open;
    this.free(frame.rid);
    if (!opening) {
      this.opts.log.warn(`dropped frame for unknown request ${frame.rid}: ${(err as Error).message}`);
      return [];
    }
    const e = err as Error;
    const error: ErrorFrame = { t: 'error', v: ACTIVATION_FRAME_VERSION, rid: frame.rid, name: e.name || 'Error', message: e.message || String(err), from: this.opts.selfId };
    if (err instanceof PrefixMissError) error.held = err.held;
    return [{ to: opening.coordinator, frame: error }];
  }

  /** Keys of the shards that live requests use (they must not be freed under them). */
  shardsInUse(): Set<string> {
    return new Set([...this.sessions.values()].map((s) => s.shardKey));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Total bytes held by this node's KV caches. */
  cacheBytes(): number {
    let total = 0;
    for (const s of this.sessions.values()) total += s.cache.bytes();
    return total;
  }

  /** Frees every request coordinated by `peerId` (that coordinator is gone: nobody will release them). */
  dropRequestsOf(coordinator: string, reason: string): number {
    let dropped = 0;
    for (const [rid, s] of this.sessions) {
      if (s.opening.coordinator === coordinator) {
        this.free(rid);
        dropped++;
      }
    }
    if (dropped > 0) this.opts.log.info(`freed ${dropped} request(s) of coordinator ${coordinator.slice(-8)}: ${reason}`);
    return dropped;
  }

  /** Frees requests idle for longer than `idleMs` (a safety net for lost release frames). */
  sweepIdle(idleMs: number, now = Date.now()): number {
    let dropped = 0;
    for (const [rid, s] of this.sessions) {
      if (now - s.lastActive > idleMs) {
        this.free(rid);
        dropped++;
      }
    }
    return dropped;
  }

  close(): void {
    for (const rid of [...this.sessions.keys()]) this.free(rid);
  }

  /**
   * Positions [start, start + count) of `layers` of a live request's cache (a live move's `kv-read`). The last round
   * of a move also asks for the row of the step going out with it (`computing`, so that the switch has nothing left
   * to copy): answered once a step from that position on is computed here — before, a row there may still be a
   * rejected draft that step drops.
   */
  async readKv(rid: string, layers: LayerRange, start: number, count: number, computing?: number): Promise<KvChunk> {
    let s = this.sessions.get(rid);
    if (computing !== undefined && start + count > computing) {
      const early = (x: Session | undefined) => x !== undefined && (x.computedFrom ?? -1) < computing;
      if (early(s)) {
        await this.computed.until(rid, computing + 1);
        s = this.sessions.get(rid);
        // Timed out: a row there may still be a rejected draft; the copy fails (the request replays) rather than take it.
        if (early(s)) throw new KvMoveError(`request ${rid}: the step at position ${computing} was not computed here in time to read its row`);
      }
    }
    if (!s) throw new KvMoveError(`request ${rid} is not open on this stage (it may have ended or been freed)`);
    const received = wallMs();
    const chunk = exportKv(s.cache, s.shard.range, layers, start, count);
    this.opts.log.debug(stageReadLine({ rid, start, count, received, exported: wallMs() }));
    return chunk;
  }

  /**
   * Takes a request moving here with its KV (`kv-adopt`): opens it under its new wire id on the first part, fills
   * positions [start, start + count) of every layer from `pull`, and only then counts them. Parts apply in the order
   * asked: the switch's part may come while the last round still copies. The first step comes with the switch's
   * part (or before it): it waits for it. A failed part frees it here: the coordinator replays the request instead.
   */
  async adoptKv(req: KvAdoptRequest, pull: KvPull): Promise<number> {
    const received = wallMs();
    const before = this.adopting.get(req.rid);
    const part = (before ?? Promise.resolve()).catch(() => {}).then(() => this.adoptPart(req, pull, received));
    this.adopting.set(req.rid, part);
    try {
      return await part;
    } finally {
      if (this.adopting.get(req.rid) === part) this.adopting.delete(req.rid);
    }
  }

  private async adoptPart(req: KvAdoptRequest, pull: KvPull, received: number): Promise<number> {
    let s = this.sessions.get(req.rid);
    if (req.start === 0 && s) throw new KvMoveError(`request ${req.rid} is already open on this stage`);
    try {
      if (req.start === 0) {
        s = await this.openSession(req.rid, req.stage, req.opening);
        s.stepDone = true;
        s.movedIn = true;
      }
      if (!s || s.stage !== req.stage || s.cache.length !== req.start) throw new KvMoveError(`request ${req.rid} does not hold ${req.start} positions on stage ${req.stage} here`);
      const session = s;
      checkCoverage(req.sources, s.shard.range);
      // Time with at least one piece awaited (the pieces of the sources are read in parallel).
      let [readMs, pending, since] = [0, 0, 0];
      const timedPull = async (src: KvSource, start: number, count: number) => {
        if (pending++ === 0) since = performance.now();
        try {
          return await pull(src, start, count, req.computing);
        } finally {
          if (--pending === 0) readMs += performance.now() - since;
        }
      };
      const copied = await pullKv(s.cache, s.shard.range, req.sources, req.start, req.count, timedPull, () => this.sessions.get(req.rid) === session);
      movableCache(session.cache).setLength(req.start + req.count);
      // The request as the new route serves it from now on (the sampler resumes where the old route's left off).
      session.opening = req.opening;
      if (session.sampler) session.sampler = createRequestSampler(req.opening, this.opts.vocabulary ?? noVocabulary);
      session.floor = session.cache.length;
      session.lastActive = Date.now();
      if (!req.precopy) {
        session.switched = true;
        this.waits.reached(req.rid, session.cache.length);
      }
      this.opts.log.debug(stageAdoptLine({ rid: req.rid, start: req.start, count: req.count, received, readMs, counted: wallMs() }));
      return copied;
    } catch (err) {
      this.free(req.rid);
      throw err;
    }
  }

  private async openSession(rid: string, stage: number, opening: RequestOpening): Promise<Session> {
    const { selfId, modelFingerprint, shards } = this.opts;
    if (opening.route[stage] !== selfId) throw new StageError(`stage ${stage} of request ${rid} is ${opening.route[stage]}, not this node`);
    if (opening.model !== modelFingerprint) throw new StageError(`request is for model ${opening.model}, this node has ${modelFingerprint}`);
    const [startLayer, endLayer] = opening.ranges[stage];
    const inUse = this.shardsInUse();
    const shard = await shards.get({ startLayer, endLayer }, inUse, opening.lora);
    const isLast = stage === opening.route.length - 1;
    if (isLast !== shard.isLast) throw new StageError(`stage ${stage} has layers [${startLayer}, ${endLayer}) but is ${isLast ? '' : 'not '}the last stage`);
    const session: Session = {
      opening,
      stage,
      shard,
      shardKey: ShardStore.key({ startLayer, endLayer }, opening.lora),
      cache: shard.createCache(opening.contextLength),
      sampler: isLast && !opening.embed ? createRequestSampler(opening, this.opts.vocabulary ?? noVocabulary) : null,
      pool: isLast && opening.embed ? new MeanPool(shard.config.hiddenSize) : null,
      step: 0,
      stepDone: false,
      floor: 0,
      lastActive: Date.now(),
    };
    this.sessions.set(rid, session);
    this.opts.onSessionsChanged?.(this.sessions.size);
    return session;
  }

  /** Where a completed frame's results go: a sampled token to the coordinator, or hidden states to the next stage. */
  private emit(frame: ActFrame, s: Session, out: ShardOutput, computeMs: number): Outgoing[] {
    if (frame.draft && !frame.final) {
      // A verification's part: its time counts in the step's, and on the last stage its logits wait for the rest.
      s.partMs = (s.partMs ?? 0) + computeMs;
      if (out.kind === 'logits') {
        const vocab = s.shard.config.vocabSize;
        (s.partLogits ??= new Float32Array((1 + frame.draft.length) * vocab)).set(out.logits, (frame.rowsBefore ?? 0) * vocab);
        return [];
      }
    } else if (frame.draft && s.partMs !== undefined) {
      computeMs += s.partMs;
      s.partMs = undefined;
    }
    const stageMs = [...(frame.stageMs ?? []), computeMs];
    // The prompt is complete here: keep its blocks now (a request sharing them may start before this one ends), and
    // tell the coordinator how much of it every stage keeps.
    const held = frame.step === 0 && frame.final && !s.pool ? [...(frame.held ?? []), this.keep(s, s.opening.promptTokens)] : undefined;
    const { route, coordinator } = s.opening;
    if (s.pool) {
      // An embedding request: every chunk's final-normed rows are pooled; the last one sends the vector back.
      if (out.kind !== 'hidden') throw new StageError('the last stage did not produce hidden states for an embedding');
      s.pool.add(out.hidden, out.n);
      if (!frame.final) return [];
      return [{ to: coordinator, frame: { t: 'token', v: ACTIVATION_FRAME_VERSION, rid: frame.rid, step: frame.step, token: 0, stageMs, emb: s.pool.result() } }];
    }
    if (out.kind === 'logits') {
      if (!frame.final) return []; // a middle chunk of the prompt: only the last one is sampled
      if (frame.draft) {
        let logits = out.logits;
        if (s.partLogits) {
          s.partLogits.set(out.logits, (frame.rowsBefore ?? 0) * s.shard.config.vocabSize);
          [logits, s.partLogits] = [s.partLogits, undefined];
        }
        const step = { rid: frame.rid, step: frame.step, pos: stepStart(frame) };
        return [{ to: coordinator, frame: verificationAnswer(step, frame.draft, s.sampler!, { vocabSize: s.shard.config.vocabSize, contextLength: s.opening.contextLength }, logits, stageMs) }];
      }
      // Tokens still allowed, this one included: the grammar must be able to finish within them.
      const token = s.sampler!.sample(out.logits, s.opening.contextLength - s.cache.length);
      const lp = s.sampler!.lastLogprob;
      const tokenFrame: TokenFrame = { t: 'token', v: ACTIVATION_FRAME_VERSION, rid: frame.rid, step: frame.step, token, stageMs };
      if (lp) tokenFrame.lp = wireLogprob(lp);
      if (held) tokenFrame.held = held;
      return [{ to: coordinator, frame: tokenFrame }];
    }
    const next = route[s.stage + 1];
    const H = s.shard.config.hiddenSize;
    const all = out.hidden;
    const rows = this.opts.maxRowsPerFrame;
    const outgoing: Outgoing[] = [];
    for (let r = 0; r < frame.n; r += rows) {
      const n = Math.min(rows, frame.n - r);
      const last = r + n >= frame.n;
      const act: ActFrame = {
        t: 'act',
        v: ACTIVATION_FRAME_VERSION,
        rid: frame.rid,
        stage: s.stage + 1,
        step: frame.step,
        pos: frame.pos + r,
        n,
        final: frame.final && last,
        hidden: frame.n === n ? all : all.subarray(r * H, (r + n) * H),
        stageMs,
      };
      if (frame.open && r === 0) act.open = s.opening;
      if (frame.draft) act.draft = frame.draft;
      const before = (frame.rowsBefore ?? 0) + r;
      if (before > 0) act.rowsBefore = before;
      if (held && act.final) act.held = held;
      outgoing.push({ to: next, frame: act, coordinator });
    }
    return outgoing;
  }

  private release(frame: ReleaseFrame): Outgoing[] {
    const s = this.sessions.get(frame.rid);
    if (!s) return [];
    // Rows past the tokens the release names (drafts the last pass rejected) are not the conversation's: the prefix
    // cache keeps only rows of named tokens, and they are cut here as well.
    const fed = s.opening.promptTokens.length + (frame.tokens?.length ?? 0);
    if (!s.pool && s.cache.length > fed) s.cache.truncate(fed);
    // What the request computed (prompt and generated tokens) stays for the next turn of its conversation.
    if (!s.pool) this.keep(s, frame.tokens ? [...s.opening.promptTokens, ...frame.tokens] : s.opening.promptTokens);
    this.free(frame.rid);
    const next = s.opening.route[s.stage + 1];
    return next ? [{ to: next, frame: { ...frame, stage: s.stage + 1 } }] : [];
  }

  /** Keeps the whole blocks of the session's cache whose tokens are `tokens`; returns the positions held. */
  private keep(s: Session, tokens: readonly number[]): number {
    const cache = this.opts.prefixCache;
    if (!cache?.enabled) return 0;
    try {
      return cache.store(s.shardKey, tokens, s.cache);
    } catch (err) {
      // A cache freed under it (a failed batch): nothing to keep, and the request itself is unaffected.
      this.opts.log.warn(`prefix cache: could not keep the blocks of a request: ${(err as Error).message}`);
      return 0;
    }
  }

  private free(rid: string): void {
    const s = this.sessions.get(rid);
    if (!s) return;
    // Its frames still queued (or a prompt part-way) must not run on the freed cache.
    this.scheduler.cancel(rid, new StageError(`request ${rid} was freed on this stage`));
    s.cache.clear();
    this.sessions.delete(rid);
    this.waits.end(rid);
    this.computed.end(rid);
    this.opts.onSessionsChanged?.(this.sessions.size);
  }
}

function noVocabulary(): never {
  throw new StageError('this stage has no tokenizer vocabulary for constrained sampling');
}

function fail(message: string): never {
  throw new StageError(message);
}
