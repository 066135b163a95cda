import { createRequestSampler } from '../engine/request-sampler.js';
import type { Sampler } from '../engine/sampler.js';
import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { BatchItem, ForwardShard, ShardKvCache, ShardOutput } from '../engine/forward-shard.js';
import type { NodeLogger } from '../network/node-logger.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ActivationFrame, type ErrorFrame, type ReleaseFrame, type RequestOpening, type TokenFrame } from './activation-frame.js';
import { ShardStore } from './shard-store.js';
import { planStep } from '../engine/step-plan.js';

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
  /** Step being received, and whether its final chunk has arrived. */
  step: number;
  stepDone: boolean;
  lastActive: number;
}

const DEFAULT_COMPUTE_ROWS = 32;
const DEFAULT_BATCH_ROWS = 64;

/** A frame waiting for (or part-way through) the stage's steps. */
interface Job {
  frame: ActFrame | ReleaseFrame;
  resolve: (out: Outgoing[]) => void;
  session?: Session;
  /** Rows of an act frame computed so far. */
  done: number;
  /** The frame's hidden states, filled slice by slice (middle stages). */
  hidden?: Float32Array;
  /** Milliseconds of the steps it took part in. */
  computeMs: number;
}

/** One run of a stage's layers over some rows. */
export interface ComputeSample {
  startLayer: number;
  endLayer: number;
  /** Rows of the step in all. */
  rows: number;
  /** Each request's rows in the step: how many, the tokens already in its KV cache, whether logits were computed. */
  parts: { rows: number; position: number; logits: boolean }[];
  ms: number;
}

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
  private readonly pending: Job[] = [];
  private stepping = false;
  private lastStepEnd = 0;

  constructor(private readonly opts: StageWorkerOptions) {}

  /** Queues a frame; resolves with the frames it produced once it has run (errors become error frames). */
  handle(frame: ActFrame | ReleaseFrame): Promise<Outgoing[]> {
    return new Promise((resolve) => {
      this.pending.push({ frame, resolve, done: 0, computeMs: 0 });
      this.kick();
    });
  }

  /** Frames waiting or part-way through. */
  get queuedFrames(): number {
    return this.pending.length;
  }

  private kick(): void {
    if (this.stepping) return;
    this.stepping = true;
    const run = () => {
      this.step()
        .catch((err: unknown) => this.opts.log.error(`stage step failed: ${(err as Error).message}`))
        .finally(() => {
          this.stepping = false;
          this.lastStepEnd = performance.now();
          if (this.pending.length > 0) this.kick();
        });
    };
    // Back-to-back steps leave a turn of the event loop between them (network, heartbeats, HTTP); a step after an idle
    // moment starts at once, so a lone request does not wait for a turn on every token.
    if (performance.now() - this.lastStepEnd < 1) setImmediate(run);
    else queueMicrotask(run);
  }

  /** One step: the next frame of every waiting request, within the row budgets, through the layers together. */
  private async step(): Promise<void> {
    const waiting = [...this.pending];
    const plan = planStep(
      waiting.map((job) => ({ request: job.frame.rid, rows: job.frame.t === 'act' ? job.frame.n : 1, rowsLeft: job.frame.t === 'act' ? job.frame.n - job.done : 1 })),
      { promptRows: this.opts.computeRows ?? DEFAULT_COMPUTE_ROWS, batchRows: this.opts.batchRows ?? DEFAULT_BATCH_ROWS },
    );
    const parts: { job: Job; rows: number }[] = [];
    let rows = 0;
    for (const { index, rows: take } of plan) {
      const job = waiting[index];
      const frame = job.frame;
      if (frame.t === 'release') {
        this.finish(job, this.release(frame));
        continue;
      }
      try {
        if (job.done === 0) job.session = await this.begin(frame);
        if (this.sessions.get(frame.rid) !== job.session) throw new StageError(`request ${frame.rid} was freed while its prompt was running`);
      } catch (err) {
        this.finish(job, this.failure(frame, job.session, err));
        continue;
      }
      parts.push({ job, rows: take });
      rows += take;
    }
    if (parts.length === 0) return;

    // One pass per shard (a node may briefly hold two ranges while the plan changes).
    const t0 = performance.now();
    const byShard = new Map<ForwardShard, { job: Job; rows: number }[]>();
    for (const p of parts) {
      const list = byShard.get(p.job.session!.shard) ?? [];
      list.push(p);
      byShard.set(p.job.session!.shard, list);
    }
    const results = new Map<Job, ShardOutput>();
    for (const [shard, list] of byShard) {
      try {
        const items = list.map((p) => this.batchItem(p.job, p.rows));
        const ts = performance.now();
        const outs = shard.forwardBatch(items);
        this.opts.onCompute?.({
          startLayer: shard.range.startLayer,
          endLayer: shard.range.endLayer,
          rows: list.reduce((n, p) => n + p.rows, 0),
          parts: list.map((p, i) => ({ rows: p.rows, position: p.job.session!.cache.length - p.rows, logits: items[i].logits !== 'none' && shard.isLast })),
          ms: performance.now() - ts,
        });
        list.forEach((p, i) => results.set(p.job, outs[i]));
      } catch (err) {
        // The batch's caches are no longer usable (see forwardBatch): every request in it fails.
        for (const p of list) this.finish(p.job, this.failure(p.job.frame as ActFrame, p.job.session, err));
      }
    }
    const ms = performance.now() - t0;
    this.opts.onStep?.(rows, parts.length, ms);

    for (const p of parts) {
      const out = results.get(p.job);
      if (!out) continue;
      const job = p.job;
      const frame = job.frame as ActFrame;
      job.computeMs += ms;
      if (out.kind === 'hidden') {
        const H = job.session!.shard.config.hiddenSize;
        if (p.rows === frame.n) job.hidden = out.hidden;
        else (job.hidden ??= new Float32Array(frame.n * H)).set(out.hidden, job.done * H);
      }
      job.done += p.rows;
      if (job.done === frame.n) this.finish(job, this.emit(frame, job.session!, out, job.hidden ?? null, job.computeMs));
    }
  }

  private finish(job: Job, out: Outgoing[]): void {
    const i = this.pending.indexOf(job);
    if (i >= 0) this.pending.splice(i, 1);
    job.resolve(out);
  }

  /** The rows of a job this step computes, as the shard's batch item. */
  private batchItem(job: Job, rows: number): BatchItem {
    const frame = job.frame as ActFrame;
    const s = job.session!;
    const r0 = job.done;
    const last = r0 + rows === frame.n;
    // Only the last row of a step's final frame is sampled: earlier slices skip the output head.
    const logits = last && frame.final ? 'last' : 'none';
    if (s.shard.isFirst) {
      const tokens = frame.tokens ?? fail('the first stage needs token ids');
      return { input: { kind: 'tokens', tokens: tokens.subarray(r0, r0 + rows) }, cache: s.cache, logits };
    }
    const hidden = frame.hidden ?? fail('this stage needs hidden states');
    const H = s.shard.config.hiddenSize;
    return { input: { kind: 'hidden', hidden: hidden.subarray(r0 * H, (r0 + rows) * H), n: rows }, cache: s.cache, logits };
  }

  /** Opens the request on its first frame and checks the frame's place in it. */
  private async begin(frame: ActFrame): Promise<Session> {
    let session = this.sessions.get(frame.rid);
    if (frame.open) {
      if (session) throw new StageError(`request ${frame.rid} is already open on this stage`);
      session = await this.openSession(frame, frame.open);
    }
    if (!session) throw new StageError(`request ${frame.rid} is not open on this stage (it may have been freed)`);
    if (frame.stage !== session.stage) throw new StageError(`frame for stage ${frame.stage} arrived at stage ${session.stage}`);
    // Step order: chunks of the current step, or the first chunk of the next one once the current is complete.
    const nextStep = session.stepDone ? session.step + 1 : session.step;
    if (frame.step !== nextStep) throw new StageError(`expected step ${nextStep}, got step ${frame.step}`);
    if (frame.pos !== session.cache.length) throw new StageError(`expected position ${session.cache.length}, got ${frame.pos}`);
    if (session.shard.isFirst ? !frame.tokens : !frame.hidden) throw new StageError(session.shard.isFirst ? 'the first stage needs token ids' : 'this stage needs hidden states');
    session.step = frame.step;
    session.stepDone = frame.final;
    session.lastActive = Date.now();
    return session;
  }

  /** An error frame to the request's coordinator (and the request freed here). */
  private failure(frame: ActFrame, session: Session | undefined, err: unknown): Outgoing[] {
    const opening = session?.opening ?? frame.open;
    this.free(frame.rid);
    if (!opening) {
      this.opts.log.warn(`dropped frame for unknown request ${frame.rid}: ${(err as Error).message}`);
      return [];
    }
    const e = err as Error;
    const error: ErrorFrame = { t: 'error', v: ACTIVATION_FRAME_VERSION, rid: frame.rid, name: e.name || 'Error', message: e.message || String(err), from: this.opts.selfId };
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

  private async openSession(frame: ActFrame, opening: RequestOpening): Promise<Session> {
    const { selfId, modelFingerprint, shards } = this.opts;
    if (opening.route[frame.stage] !== selfId) throw new StageError(`stage ${frame.stage} of request ${frame.rid} is ${opening.route[frame.stage]}, not this node`);
    if (opening.model !== modelFingerprint) throw new StageError(`request is for model ${opening.model}, this node has ${modelFingerprint}`);
    const [startLayer, endLayer] = opening.ranges[frame.stage];
    const inUse = this.shardsInUse();
    const shard = await shards.get({ startLayer, endLayer }, inUse);
    const isLast = frame.stage === opening.route.length - 1;
    if (isLast !== shard.isLast) throw new StageError(`stage ${frame.stage} has layers [${startLayer}, ${endLayer}) but is ${isLast ? '' : 'not '}the last stage`);
    const session: Session = {
      opening,
      stage: frame.stage,
      shard,
      shardKey: ShardStore.key({ startLayer, endLayer }),
      cache: shard.createCache(opening.contextLength),
      sampler: isLast ? createRequestSampler(opening, this.opts.vocabulary ?? noVocabulary) : null,
      step: 0,
      stepDone: false,
      lastActive: Date.now(),
    };
    this.sessions.set(frame.rid, session);
    this.opts.onSessionsChanged?.(this.sessions.size);
    return session;
  }

  /** Where a completed frame's results go: a sampled token to the coordinator, or hidden states to the next stage. */
  private emit(frame: ActFrame, s: Session, out: ShardOutput, hidden: Float32Array | null, computeMs: number): Outgoing[] {
    const stageMs = [...(frame.stageMs ?? []), computeMs];
    const { route, coordinator } = s.opening;
    if (out.kind === 'logits') {
      if (!frame.final) return []; // a middle chunk of the prompt: only the last one is sampled
      // Tokens still allowed, this one included: the grammar must be able to finish within them.
      const token = s.sampler!.sample(out.logits, s.opening.contextLength - s.cache.length);
      const lp = s.sampler!.lastLogprob;
      const tokenFrame: TokenFrame = { t: 'token', v: ACTIVATION_FRAME_VERSION, rid: frame.rid, step: frame.step, token, stageMs };
      if (lp) tokenFrame.lp = { l: lp.logprob, top: lp.top.map((e) => [e.token, e.logprob]) };
      return [{ to: coordinator, frame: tokenFrame }];
    }
    const next = route[s.stage + 1];
    const H = s.shard.config.hiddenSize;
    const all = hidden ?? out.hidden;
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
      outgoing.push({ to: next, frame: act, coordinator });
    }
    return outgoing;
  }

  private release(frame: ReleaseFrame): Outgoing[] {
    const s = this.sessions.get(frame.rid);
    if (!s) return [];
    this.free(frame.rid);
    const next = s.opening.route[s.stage + 1];
    return next ? [{ to: next, frame: { ...frame, stage: s.stage + 1 } }] : [];
  }

  private free(rid: string): void {
    const s = this.sessions.get(rid);
    if (!s) return;
    s.cache.clear();
    this.sessions.delete(rid);
    this.opts.onSessionsChanged?.(this.sessions.size);
  }
}

function noVocabulary(): never {
  throw new StageError('this stage has no tokenizer vocabulary for constrained sampling');
}

function fail(message: string): never {
  throw new StageError(message);
}
