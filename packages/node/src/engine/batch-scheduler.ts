import { BATCH_ROWS_PER_STEP, PROMPT_ROWS_PER_STEP } from '@edge-node/partitioner';
import type { BatchItem, ForwardShard, ShardInput, ShardKvCache, ShardOutput } from './forward-shard.js';
import { ShardInputError } from './forward-shard.js';
import { copyOutput, copyPrompt, RecentPrompts, samePrompt, type SharedPrompt } from './shared-prompt.js';
import { gatherWaitMs } from './gather-window.js';
import { planStep, stepBudget } from './step-plan.js';

/** One run of a shard's layers over some rows (a step's pass on one shard). */
export interface ComputeSample {
  startLayer: number;
  endLayer: number;
  /** Rows of the step in all. */
  rows: number;
  /** Each request's rows in the step: how many, the tokens already in its KV cache, whether logits were computed. */
  parts: { rows: number; position: number; logits: boolean }[];
  ms: number;
}

/** What a piece of work computes, known at its first turn. */
export interface RowsToCompute {
  shard: ForwardShard;
  cache: ShardKvCache;
  /** All its rows; the scheduler computes them in slices. */
  input: ShardInput;
  /**
   * Logits of its last row (on the last shard); `all`: of every row (a verification of drafted tokens samples each);
   * false for rows whose next token is not sampled.
   */
  logits: boolean | 'all';
  /** On the last shard: every row's hidden state after the final norm instead of logits (an embedding request). */
  embedding?: boolean;
}

/** Rows of one request, queued behind that request's earlier work. */
export interface BatchWork {
  request: string;
  /** Rows it computes (1 = a decode row; more = a prompt, computed in slices). */
  rows: number;
  /**
   * Called at its first turn, once the request's earlier work is done (so a check of the cache's length holds):
   * what to compute. A throw (or rejection) fails this work alone.
   */
  start(): RowsToCompute | Promise<RowsToCompute>;
}

export interface ComputedRows {
  /** Hidden states of all its rows, or — on the last shard — the logits asked for (none for `logits: false`). */
  output: ShardOutput;
  /** Milliseconds of the steps it took part in. */
  computeMs: number;
}

export interface BatchSchedulerOptions {
  /** Most rows of one prompt in a step (a longer prompt is spread over steps, between other requests' rows). Default 32. */
  promptRows?: number;
  /** Most rows in one step (decode rows of many requests plus prompt slices). Default 64. */
  batchRows?: number;
  /**
   * A step should take about this long at most (the tokens of requests streaming wait for it; the event loop turns
   * within a step, compute-slices.ts): the row budgets shrink to what the measured milliseconds per row allow.
   * Default 750.
   */
  stepTargetMs?: number;
  /** After each step: its rows and requests, and how long it took (for metrics). */
  onStep?: (rows: number, requests: number, ms: number) => void;
  /** After each pass over a shard (the device watch compares it with the profile's prediction). */
  onCompute?: (sample: ComputeSample) => void;
  /** A step failed outside any work (a bug: work failures reject their own promise). */
  onError?: (err: Error) => void;
}

// One definition with the cost model's: plans count a prompt's steps with the rows a step really takes.
export const DEFAULT_PROMPT_ROWS = PROMPT_ROWS_PER_STEP;
export const DEFAULT_BATCH_ROWS = BATCH_ROWS_PER_STEP;
export const DEFAULT_STEP_TARGET_MS = 750;
/** Weight of the newest step in the running ms-per-row figure. */
const MS_PER_ROW_WEIGHT = 0.3;

interface Queued {
  request: string;
  rows: number;
  /** Null for a turn with no rows. */
  start: BatchWork['start'] | null;
  resolve: (done: ComputedRows | null) => void;
  reject: (err: unknown) => void;
  target?: RowsToCompute;
  /** It started on an empty cache: an identical prompt may copy what it computes. */
  fresh?: boolean;
  /** The identical prompt being computed that this work waits for, to copy it. */
  leader?: Queued;
  /** Rows computed so far. */
  done: number;
  /** Hidden states of a work computed in slices, filled slice by slice. */
  hidden?: Float32Array;
  /** Every row's logits of an `all` work computed in slices, filled slice by slice. */
  logits?: Float32Array;
  computeMs: number;
}

/** A work and how many of its rows a step computes. */
interface StepPart {
  q: Queued;
  rows: number;
}

/**
 * Continuous batching on one device, for a pipeline stage and for the whole model alike: work waits in arrival
 * order, and each step takes the next work of every waiting request — decode rows of many requests and a slice of
 * each prompt, within the budgets of `planStep` — through `forwardBatch` in one pass per shard, so every weight is
 * read once for all of them. Requests join and leave between steps; each row's result is the same bits as if its
 * request ran alone. Back-to-back steps leave a turn of the event loop between them; on a device holding the whole
 * model the next step waits briefly for the last step's requests to come back (gather-window.ts).
 */
export class BatchScheduler {
  private readonly queue: Queued[] = [];
  private stepping = false;
  private lastStepEnd = Number.NEGATIVE_INFINITY;
  private lastStepMs = 0;
  /** Requests whose work the last step finished on a whole-model shard: they come back at once (gather-window.ts). */
  private expected = new Set<string>();
  private gatherTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly recent = new RecentPrompts();
  private readonly promptRows: number;
  private readonly batchRows: number;
  /** Running figure of a step's milliseconds per row (null until a step was timed). */
  private msPerRow: number | null = null;

  constructor(private readonly opts: BatchSchedulerOptions = {}) {
    this.promptRows = opts.promptRows ?? DEFAULT_PROMPT_ROWS;
    this.batchRows = opts.batchRows ?? DEFAULT_BATCH_ROWS;
    if (!Number.isInteger(this.promptRows) || this.promptRows < 1) throw new ShardInputError(`prompt rows per step must be a whole number ≥ 1 (got ${this.promptRows})`);
    if (!Number.isInteger(this.batchRows) || this.batchRows < 1) throw new ShardInputError(`rows per step must be a whole number ≥ 1 (got ${this.batchRows})`);
  }

  /** Queues rows of a request; resolves with their output once all are computed. */
  submit(work: BatchWork): Promise<ComputedRows> {
    if (!Number.isInteger(work.rows) || work.rows < 1) return Promise.reject(new ShardInputError(`work must have at least one row (got ${work.rows})`));
    return this.enqueue(work.request, work.rows, work.start) as Promise<ComputedRows>;
  }

  /** Resolves at the request's turn, after its earlier work (for what must follow it, such as freeing the request). */
  turn(request: string): Promise<void> {
    return this.enqueue(request, 0, null).then(() => undefined);
  }

  /** Rejects every queued or part-way work of the request with `reason`; none of its rows are computed after this. */
  cancel(request: string, reason: Error): void {
    for (const q of this.queue.filter((w) => w.request === request)) this.fail(q, reason);
  }

  /** Work waiting or part-way through. */
  get queued(): number {
    return this.queue.length;
  }

  private enqueue(request: string, rows: number, start: BatchWork['start'] | null): Promise<ComputedRows | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, rows, start, resolve, reject, done: 0, computeMs: 0 });
      this.kick();
    });
  }

  private kick(): void {
    if (this.stepping || this.queue.length === 0) return;
    // A ring's stages expect nobody: they build no set of the queue on every enqueue.
    const wait =
      this.expected.size === 0
        ? 0
        : gatherWaitMs({
            now: performance.now(),
            lastStepEnd: this.lastStepEnd,
            lastStepMs: this.lastStepMs,
            expected: this.expected,
            queued: new Set(this.queue.map((q) => q.request)),
          });
    if (wait > 0) {
      this.gatherTimer ??= setTimeout(() => {
        this.gatherTimer = null;
        this.kick();
      }, wait);
      return;
    }
    if (this.gatherTimer !== null) {
      clearTimeout(this.gatherTimer);
      this.gatherTimer = null;
    }
    this.stepping = true;
    const run = () => {
      this.step()
        .catch((err: unknown) => this.opts.onError?.(err as Error))
        .finally(() => {
          this.stepping = false;
          this.lastStepEnd = performance.now();
          if (this.queue.length > 0) this.kick();
        });
    };
    // Back-to-back steps leave a turn of the event loop between them (network, heartbeats, HTTP); a step after an idle
    // moment starts at once, so a lone request does not wait for a turn on every token.
    if (performance.now() - this.lastStepEnd < 1) setImmediate(run);
    else queueMicrotask(run);
  }

  /** One step: the next work of every waiting request, within the row budgets, through the layers together. */
  private async step(): Promise<void> {
    const parts = await this.stepParts();
    // Work cancelled while another started is no longer queued (its cache may be freed).
    const live = parts.filter((p) => this.queue.includes(p.q));
    if (live.length === 0) return;
    const t0 = performance.now();
    const outputs = await this.computeByShard(live);
    const ms = performance.now() - t0;
    const stepRows = live.reduce((n, p) => n + p.rows, 0);
    this.msPerRow = this.msPerRow === null ? ms / stepRows : (1 - MS_PER_ROW_WEIGHT) * this.msPerRow + MS_PER_ROW_WEIGHT * (ms / stepRows);
    this.opts.onStep?.(stepRows, live.length, ms);
    this.lastStepMs = performance.now() - t0;
    this.deliver(live, outputs, ms);
  }

  /** The work this step takes and how many of its rows, each started at its first turn; turns without rows end here. */
  private async stepParts(): Promise<StepPart[]> {
    const waiting = [...this.queue];
    const plan = planStep(
      // A turn without rows counts as one row, so that it is taken in its request's order.
      // A work waiting for an identical prompt takes no rows (and holds back its request's later work).
      waiting.map((q) => ({ request: q.request, rows: Math.max(q.rows, 1), rowsLeft: q.leader ? 0 : Math.max(q.rows - q.done, 1) })),
      stepBudget({ promptRows: this.promptRows, batchRows: this.batchRows }, this.msPerRow, this.opts.stepTargetMs ?? DEFAULT_STEP_TARGET_MS),
    );
    const parts: StepPart[] = [];
    for (const { index, rows } of plan) {
      const q = waiting[index];
      if (!q.start) this.finish(q, null);
      else if (q.target || (await this.begin(q))) parts.push({ q, rows });
    }
    return parts;
  }

  /** A work's first turn: what it computes, checked. False if this step does not compute it (failed, cancelled, or it copies an identical prompt). */
  private async begin(q: Queued): Promise<boolean> {
    try {
      const target = await q.start!();
      if (!this.queue.includes(q)) return false; // cancelled while it started
      if (inputRows(target.input) !== q.rows) throw new ShardInputError(`work of ${q.rows} rows started with ${inputRows(target.input)} rows of input`);
      // Checked here, not in the pass: one request's bad input or overflowing prompt must not fail its batch.
      target.shard.checkInput(target.input, target.cache);
      q.target = target;
      q.fresh = target.cache.length === 0;
      return !(q.fresh && this.follow(q));
    } catch (err) {
      this.fail(q, err);
      return false;
    }
  }

  /** One pass per shard (a stage may briefly hold two layer ranges while the plan changes): each work's output. */
  private async computeByShard(live: readonly StepPart[]): Promise<Map<Queued, ShardOutput>> {
    const byShard = new Map<ForwardShard, StepPart[]>();
    for (const p of live) {
      const shard = p.q.target!.shard;
      byShard.set(shard, [...(byShard.get(shard) ?? []), p]);
    }
    const outputs = new Map<Queued, ShardOutput>();
    for (const [shard, all] of byShard) {
      // A pass on another shard ran before this one (and let the event loop turn): work cancelled meanwhile is out.
      const list = all.filter((p) => this.queue.includes(p.q));
      if (list.length === 0) continue;
      try {
        const outs = await this.pass(shard, list);
        list.forEach((p, i) => outputs.set(p.q, outs[i]));
      } catch (err) {
        // The batch's caches are no longer usable (see forwardBatch): every request in it fails.
        for (const p of list) this.fail(p.q, err);
      }
    }
    return outputs;
  }

  /** The works' rows through one shard in one forwardBatch, reported to onCompute. */
  private async pass(shard: ForwardShard, list: readonly StepPart[]): Promise<ShardOutput[]> {
    const items = list.map((p) => batchItem(p.q, p.rows));
    const positions = list.map((p) => p.q.target!.cache.length);
    const ts = performance.now();
    const outs = await shard.forwardBatch(items);
    this.opts.onCompute?.({
      startLayer: shard.range.startLayer,
      endLayer: shard.range.endLayer,
      rows: list.reduce((n, p) => n + p.rows, 0),
      parts: list.map((p, i) => ({ rows: p.rows, position: positions[i], logits: (items[i].logits === 'last' || items[i].logits === 'all') && shard.isLast })),
      ms: performance.now() - ts,
    });
    return outs;
  }

  /** Each work's rows just computed: kept while it is computed in slices, delivered once all its rows are. */
  private deliver(live: readonly StepPart[], outputs: Map<Queued, ShardOutput>, ms: number): void {
    this.expected = new Set();
    for (const { q, rows } of live) {
      const out = outputs.get(q);
      // Cancelled during the pass (its cache is freed as the pass ends): nothing to deliver or share.
      if (!out || !this.queue.includes(q)) continue;
      q.computeMs += ms;
      if (out.kind === 'hidden' && rows < q.rows) {
        const H = q.target!.shard.config.hiddenSize;
        (q.hidden ??= new Float32Array(q.rows * H)).set(out.hidden, q.done * H);
      }
      if (out.kind === 'logits' && q.target!.logits === 'all' && rows < q.rows) {
        const V = q.target!.shard.config.vocabSize;
        (q.logits ??= new Float32Array(q.rows * V)).set(out.logits, q.done * V);
      }
      q.done += rows;
      if (q.done === q.rows) this.complete(q, out);
    }
  }

  /** All of a work's rows are computed: its output (the slices' together), shared if it was a fresh prompt. */
  private complete(q: Queued, last: ShardOutput): void {
    const output: ShardOutput =
      last.kind === 'hidden' && q.hidden ? { kind: 'hidden', hidden: q.hidden, n: q.rows } : last.kind === 'logits' && q.logits ? { kind: 'logits', logits: q.logits, rows: q.rows } : last;
    if (q.fresh) this.share(q, output);
    const shard = q.target!.shard;
    // An embedding request does not come back for a next step: nothing to wait for.
    if (shard.isFirst && shard.isLast && !q.target!.embedding) this.expected.add(q.request);
    this.finish(q, { output, computeMs: q.computeMs });
  }

  /** An identical prompt computed lately (copied now) or being computed (waited for): true if there is one. */
  private follow(q: Queued): boolean {
    const target = q.target!;
    const done = this.recent.find(target, q.rows);
    if (done) {
      this.finish(q, copyPrompt(done, target));
      return true;
    }
    q.leader = this.queue.find((o) => o !== q && o.fresh && !o.leader && samePrompt(o.target!, target));
    return q.leader !== undefined;
  }

  /** A prompt just computed: for the identical prompts waiting for it, and for those still to come. */
  private share(q: Queued, output: ShardOutput): void {
    const prompt: SharedPrompt = { target: q.target!, output: copyOutput(output), computeMs: q.computeMs };
    this.recent.add(prompt);
    for (const f of this.queue.filter((o) => o.leader === q)) {
      try {
        this.finish(f, copyPrompt(prompt, f.target!));
      } catch (err) {
        this.fail(f, err);
      }
    }
  }

  private finish(q: Queued, done: ComputedRows | null): void {
    if (this.dequeue(q)) q.resolve(done);
  }

  private fail(q: Queued, err: unknown): void {
    if (this.dequeue(q)) q.reject(err);
  }

  /** Takes the work off the queue; false if it was no longer there (already settled or cancelled). */
  private dequeue(q: Queued): boolean {
    const i = this.queue.indexOf(q);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    // Work that waited for it to copy its prompt computes its own.
    for (const o of this.queue) if (o.leader === q) o.leader = undefined;
    return true;
  }
}

function inputRows(input: ShardInput): number {
  return input.kind === 'tokens' ? input.tokens.length : input.n;
}

/** The rows of a work that this step computes, as the shard's batch item. */
function batchItem(q: Queued, rows: number): BatchItem {
  const { input, cache, shard, logits, embedding } = q.target!;
  const r0 = q.done;
  // Only the last row of the work may need logits: earlier slices skip the output head. Embeddings need every row.
  const wanted = embedding && shard.isLast ? 'normed' : logits === 'all' ? 'all' : logits && r0 + rows === q.rows ? 'last' : 'none';
  if (rows === q.rows) return { input, cache, logits: wanted };
  if (input.kind === 'tokens') return { input: { kind: 'tokens', tokens: Array.prototype.slice.call(input.tokens, r0, r0 + rows) as number[] }, cache, logits: wanted };
  const H = shard.config.hiddenSize;
  return { input: { kind: 'hidden', hidden: input.hidden.subarray(r0 * H, (r0 + rows) * H), n: rows }, cache, logits: wanted };
}
