import type { Cluster } from './cluster.js';
import { CostModel } from './cost-model.js';
import type { ModelProfile } from './model-profile.js';
import type { Assignment, Plan } from './plan.js';
import type { RequestShape } from './request-shape.js';
import { InvalidPlanError } from './errors.js';
import { BATCH_ROWS_PER_STEP, PROMPT_ROWS_PER_STEP } from './step-rows.js';

export interface Prediction {
  /** Mean time to first token over the concurrent requests (all submitted at t = 0). */
  ttftMs: number;
  /** Mean time between a request's generated tokens. */
  tokenLatencyMs: number;
  /** Generated tokens of all requests / time until the last one finishes. */
  throughputTokPerS: number;
  /** Time until the last request finishes. */
  makespanMs: number;
}

/** What the simulator needs besides the plan: the model's cost profile and the devices' and links' profiles. */
export interface Profiles {
  model: ModelProfile;
  cluster: Cluster;
}

/** Binary min-heap of events ordered by time, then insertion order. */
class EventQueue<T> {
  private readonly items: { t: number; seq: number; v: T }[] = [];
  private seq = 0;
  get size(): number {
    return this.items.length;
  }
  push(t: number, v: T): void {
    const a = this.items;
    a.push({ t, seq: this.seq++, v });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].t < a[i].t || (a[p].t === a[i].t && a[p].seq < a[i].seq)) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): { t: number; v: T } {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        const less = (x: number, y: number) => a[x].t < a[y].t || (a[x].t === a[y].t && a[x].seq < a[y].seq);
        if (l < a.length && less(l, m)) m = l;
        if (r < a.length && less(r, m)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return { t: top.t, v: top.v };
  }
}

interface Job {
  request: number;
  /** 0 = prefill of the prompt, j ≥ 1 = the j-th decode step. */
  step: number;
  stage: number;
  /** Rows of this step still to compute on this stage (a prompt is spread over several batched steps). */
  rowsLeft: number;
}

/**
 * Discrete-event model of the pipeline with continuous batching: `concurrency` requests start at t = 0; each is a
 * prefill then genTokens − 1 decode steps travelling the ring. When a device is free it takes every waiting job into
 * one batched step — all decode rows, at most PROMPT_ROWS_PER_STEP rows of each prompt, at most BATCH_ROWS_PER_STEP in
 * all — and is busy for that step's compute (the cost model's stepMs, at each job's true KV position) plus sending
 * the outputs of the jobs it finished; link latency is in flight. With one request its per-token time equals the
 * cost model's; with more, the batches and the queueing at the slowest stage show up.
 */
export function simulate(plan: Plan | readonly Assignment[], profiles: Profiles, request: RequestShape): Prediction {
  const cm = new CostModel(profiles.model, profiles.cluster, request);
  const stages = toAssignments(plan, profiles.cluster);
  cm.checkAssignments(stages);
  return new PipelineRun(cm, stages).run();
}

type PipelineEvent = { kind: 'arrive'; job: Job } | { kind: 'done'; stage: number; finished: Job[] } | { kind: 'free'; stage: number };

/** One simulated run: the devices' queues, the events in time order, and when each request's tokens came out. */
class PipelineRun {
  private readonly r: CostModel['request'];
  private readonly k: number;
  private readonly busy: Uint8Array;
  private readonly queues: Job[][];
  private readonly firstToken: Float64Array;
  private readonly lastToken: Float64Array;
  private readonly events = new EventQueue<PipelineEvent>();

  constructor(
    private readonly cm: CostModel,
    private readonly stages: readonly Assignment[],
  ) {
    this.r = cm.request;
    this.k = stages.length;
    this.busy = new Uint8Array(this.k);
    this.queues = Array.from({ length: this.k }, () => []);
    this.firstToken = new Float64Array(this.r.concurrency);
    this.lastToken = new Float64Array(this.r.concurrency);
  }

  run(): Prediction {
    for (let q = 0; q < this.r.concurrency; q++) this.events.push(0, { kind: 'arrive', job: { request: q, step: 0, stage: 0, rowsLeft: this.r.promptTokens } });
    let now = 0;
    while (this.events.size > 0) {
      const { t, v } = this.events.pop();
      now = t;
      if (v.kind === 'arrive') {
        this.queues[v.job.stage].push(v.job);
        if (!this.busy[v.job.stage]) this.start(v.job.stage, t);
      } else if (v.kind === 'free') this.start(v.stage, t);
      else this.finishStep(v.stage, v.finished, t);
    }
    // The run ends when the last token reaches the first device.
    return this.prediction(Math.max(now, ...this.lastToken));
  }

  private rowsOf(job: Job): number {
    return job.step === 0 ? this.r.promptTokens : 1;
  }

  /** The next step of stage i: which jobs take part with how many rows, its duration, and the jobs it finishes. */
  private start(i: number, t: number): void {
    const queue = this.queues[i];
    if (queue.length === 0) {
      this.busy[i] = 0;
      return;
    }
    this.busy[i] = 1;
    const x = this.stages[i];
    const next = this.stages[(i + 1) % this.k].device;
    const parts = this.batch(queue);
    const position = (job: Job) => (job.step === 0 ? this.rowsOf(job) - job.rowsLeft : this.r.promptTokens + job.step - 1);
    let ms = this.cm.stepMs(
      x.device,
      x.start,
      x.end,
      parts.map((p) => ({ rows: p.rows, position: position(p.job), logits: p.rows === p.job.rowsLeft, prompt: p.job.step === 0 })),
    );
    const finished: Job[] = [];
    for (const p of parts) {
      p.job.rowsLeft -= p.rows;
      if (p.job.rowsLeft === 0) {
        finished.push(p.job);
        queue.splice(queue.indexOf(p.job), 1);
        ms += this.cm.transferMs(x.device, next, this.cm.payloadBytes(x.end, this.rowsOf(p.job)));
      }
    }
    this.events.push(t + ms, { kind: 'done', stage: i, finished });
  }

  /** The rows a step takes: every waiting job's next rows (a prompt's next slice), up to the step's row budget. */
  private batch(queue: readonly Job[]): { job: Job; rows: number }[] {
    const parts: { job: Job; rows: number }[] = [];
    let taken = 0;
    for (const job of queue) {
      if (taken >= BATCH_ROWS_PER_STEP) break;
      const rows = Math.min(job.rowsLeft, job.step === 0 ? PROMPT_ROWS_PER_STEP : 1, BATCH_ROWS_PER_STEP - taken);
      parts.push({ job, rows });
      taken += rows;
    }
    return parts;
  }

  /**
   * A step is done: finished jobs travel to the next stage; then (after what arrives at this same instant, as the
   * runtime's next step starts after the frames just produced are queued) the device takes its next step.
   */
  private finishStep(i: number, finished: readonly Job[], t: number): void {
    const x = this.stages[i];
    const nextStage = (i + 1) % this.k;
    // Back at the first device, a token also waits for its coordinator's turn (sampling, streaming, the next step).
    const arrival = t + this.cm.latencyMs(x.device, this.stages[nextStage].device) + this.cm.tokenMs(x.end, this.stages[nextStage].device, x.device);
    for (const job of finished) {
      if (nextStage !== 0) this.events.push(arrival, { kind: 'arrive', job: { ...job, stage: nextStage, rowsLeft: this.rowsOf(job) } });
      else this.tokenOut(job, arrival);
    }
    this.events.push(t, { kind: 'free', stage: i });
  }

  /** Back at the first device: a token is out, and the request's next decode step starts unless it is done. */
  private tokenOut(job: Job, at: number): void {
    if (job.step === 0) this.firstToken[job.request] = at;
    this.lastToken[job.request] = at;
    if (job.step + 1 < this.r.genTokens) this.events.push(at, { kind: 'arrive', job: { request: job.request, step: job.step + 1, stage: 0, rowsLeft: 1 } });
  }

  /** Means over the requests of TTFT and per-token time, and the throughput over the whole run. */
  private prediction(end: number): Prediction {
    const r = this.r;
    let ttft = 0;
    let perToken = 0;
    for (let q = 0; q < r.concurrency; q++) {
      ttft += this.firstToken[q];
      perToken += r.genTokens > 1 ? (this.lastToken[q] - this.firstToken[q]) / (r.genTokens - 1) : 0;
    }
    ttft /= r.concurrency;
    perToken /= r.concurrency;
    if (r.genTokens === 1) {
      // No decode step was simulated: report one decode step's ring time.
      perToken = this.stages.reduce((s, x, i) => s + this.cm.ringStageCost(x.device, x.start, x.end, this.stages[(i + 1) % this.k].device), 0);
    }
    return { ttftMs: ttft, tokenLatencyMs: perToken, throughputTokPerS: (r.concurrency * r.genTokens * 1000) / end, makespanMs: end };
  }
}

function toAssignments(plan: Plan | readonly Assignment[], cluster: Cluster): Assignment[] {
  if (Array.isArray(plan)) return [...(plan as readonly Assignment[])];
  const index = new Map(cluster.devices.map((d, i) => [d.id, i]));
  return (plan as Plan).stages.map((s) => {
    const device = index.get(s.device);
    if (device === undefined) throw new InvalidPlanError(`the plan uses device "${s.device}", which is not in the cluster`);
    return { device, start: s.startLayer, end: s.endLayer };
  });
}
