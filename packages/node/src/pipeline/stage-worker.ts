import type { KvCache } from '../engine/kv-cache.js';
import { createRequestSampler } from '../engine/request-sampler.js';
import type { Sampler } from '../engine/sampler.js';
import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { ShardOutput, TransformerShard } from '../engine/transformer-shard.js';
import type { NodeLogger } from '../network/node-logger.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ActivationFrame, type ErrorFrame, type ReleaseFrame, type RequestOpening, type TokenFrame } from './activation-frame.js';
import { ShardStore } from './shard-store.js';

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
  shard: TransformerShard;
  shardKey: string;
  cache: KvCache;
  /** Only on the last stage. */
  sampler: Sampler | null;
  /** Step being received, and whether its final chunk has arrived. */
  step: number;
  stepDone: boolean;
  lastActive: number;
}

const DEFAULT_COMPUTE_ROWS = 32;

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
  /** Most prompt rows computed in one go before the node's other work gets a turn. Default 32. */
  computeRows?: number;
  /** The tokenizer's byte strings, for requests with a grammar (built once, on first use). */
  vocabulary?: () => TokenVocabulary;
  /** Called whenever the set of live sessions changes (for metrics). */
  onSessionsChanged?: (count: number) => void;
}

/**
 * One node's part of the pipeline: runs incoming activation frames through its layers with a KV cache per request,
 * and says where the results go (the next stage, or — from the last stage — a sampled token to the coordinator).
 * Frames are processed one at a time in arrival order; the node's other work (network, HTTP) runs between them.
 */
export class StageWorker {
  private readonly sessions = new Map<string, Session>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: StageWorkerOptions) {}

  /** Queues a frame; resolves with the frames it produced once it has run. */
  handle(frame: ActFrame | ReleaseFrame): Promise<Outgoing[]> {
    const result = this.queue.then(() => this.process(frame));
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
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

  private async process(frame: ActFrame | ReleaseFrame): Promise<Outgoing[]> {
    if (frame.t === 'release') return this.release(frame);
    let session = this.sessions.get(frame.rid);
    try {
      if (frame.open) {
        if (session) throw new StageError(`request ${frame.rid} is already open on this stage`);
        session = await this.openSession(frame, frame.open);
      }
      if (!session) throw new StageError(`request ${frame.rid} is not open on this stage (it may have been freed)`);
      return await this.run(frame, session);
    } catch (err) {
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
  }

  private async openSession(frame: ActFrame, opening: RequestOpening): Promise<Session> {
    const { selfId, modelFingerprint, shards } = this.opts;
    if (opening.route[frame.stage] !== selfId) throw new StageError(`stage ${frame.stage} of request ${frame.rid} is ${opening.route[frame.stage]}, not this node`);
    if (opening.model !== modelFingerprint) throw new StageError(`request is for model ${opening.model}, this node has ${modelFingerprint}`);
    const [startLayer, endLayer] = opening.ranges[frame.stage];
    const inUse = new Set([...this.sessions.values()].map((s) => s.shardKey));
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

  private async run(frame: ActFrame, s: Session): Promise<Outgoing[]> {
    if (frame.stage !== s.stage) throw new StageError(`frame for stage ${frame.stage} arrived at stage ${s.stage}`);
    // Step order: chunks of the current step, or the first chunk of the next one once the current is complete.
    const nextStep = s.stepDone ? s.step + 1 : s.step;
    if (frame.step !== nextStep) throw new StageError(`expected step ${nextStep}, got step ${frame.step}`);
    if (frame.pos !== s.cache.length) throw new StageError(`expected position ${s.cache.length}, got ${frame.pos}`);
    s.step = frame.step;
    s.stepDone = frame.final;
    s.lastActive = Date.now();

    const t0 = performance.now();
    const out = await this.forwardInSlices(frame, s);
    const stageMs = [...(frame.stageMs ?? []), performance.now() - t0];

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
    const rows = this.opts.maxRowsPerFrame;
    const outgoing: Outgoing[] = [];
    for (let r = 0; r < out.n; r += rows) {
      const n = Math.min(rows, out.n - r);
      const last = r + n >= out.n;
      const act: ActFrame = {
        t: 'act',
        v: ACTIVATION_FRAME_VERSION,
        rid: frame.rid,
        stage: s.stage + 1,
        step: frame.step,
        pos: frame.pos + r,
        n,
        final: frame.final && last,
        hidden: out.n === n ? out.hidden : out.hidden.subarray(r * H, (r + n) * H),
        stageMs,
      };
      if (frame.open && r === 0) act.open = s.opening;
      outgoing.push({ to: next, frame: act, coordinator });
    }
    return outgoing;
  }

  /**
   * Runs the frame's rows through the shard, at most `computeRows` at a time with a turn of the event loop between
   * slices: a long prompt must not stop this node's heartbeats (its peers would take it for dead) or other requests.
   * Slicing changes nothing in the result: each slice attends to the cache the previous ones filled.
   */
  private async forwardInSlices(frame: ActFrame, s: Session): Promise<ShardOutput> {
    const H = s.shard.config.hiddenSize;
    const step = this.opts.computeRows ?? DEFAULT_COMPUTE_ROWS;
    const tokens = s.shard.isFirst ? (frame.tokens ?? fail('the first stage needs token ids')) : null;
    const hidden = s.shard.isFirst ? null : (frame.hidden ?? fail('this stage needs hidden states'));
    const outputs: Float32Array[] = [];
    let last: ShardOutput | null = null;
    for (let r = 0; r < frame.n; r += step) {
      if (r > 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.sessions.get(frame.rid) !== s) throw new StageError(`request ${frame.rid} was freed while its prompt was running`);
      }
      const n = Math.min(step, frame.n - r);
      const input = tokens ? { kind: 'tokens' as const, tokens: tokens.subarray(r, r + n) } : { kind: 'hidden' as const, hidden: hidden!.subarray(r * H, (r + n) * H), n };
      last = s.shard.forward(input, s.cache);
      if (last.kind === 'hidden') outputs.push(last.hidden);
    }
    if (!last || last.kind === 'logits' || outputs.length === 1) return last!;
    const all = new Float32Array(frame.n * H);
    outputs.forEach((o, i) => all.set(o, i * step * H));
    return { kind: 'hidden', hidden: all, n: frame.n };
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
