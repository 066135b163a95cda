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
  const r = cm.request;
  const k = stages.length;
  const busy = new Uint8Array(k);
  const queues: Job[][] = Array.from({ length: k }, () => []);
  const firstToken = new Float64Array(r.concurrency);
  const lastToken = new Float64Array(r.concurrency);
  const events = new EventQueue<{ kind: 'arrive'; job: Job } | { kind: 'done'; stage: number; finished: Job[] } | { kind: 'free'; stage: number }>();

  const rowsOf = (job: Job) => (job.step === 0 ? r.promptTokens : 1);
  /** The next step of stage i: which jobs take part with how many rows, its duration, and the jobs it finishes. */
  const start = (i: number, t: number) => {
    const queue = queues[i];
    if (queue.length === 0) {
      busy[i] = 0;
      return;
    }
    busy[i] = 1;
    const x = stages[i];
    const next = stages[(i + 1) % k].device;
    const parts: { job: Job; rows: number }[] = [];
    let taken = 0;
    for (const job of queue) {
      if (taken >= BATCH_ROWS_PER_STEP) break;
      const rows = Math.min(job.rowsLeft, job.step === 0 ? PROMPT_ROWS_PER_STEP : 1, BATCH_ROWS_PER_STEP - taken);
      parts.push({ job, rows });
      taken += rows;
    }
    const position = (job: Job) => (job.step === 0 ? rowsOf(job) - job.rowsLeft : r.promptTokens + job.step - 1);
    let ms = cm.stepMs(
      x.device,
      x.start,
      x.end,
      parts.map((p) => ({ rows: p.rows, position: position(p.job), logits: p.rows === p.job.rowsLeft })),
    );
    const finished: Job[] = [];
    for (const p of parts) {
      p.job.rowsLeft -= p.rows;
      if (p.job.rowsLeft === 0) {
        finished.push(p.job);
        queue.splice(queue.indexOf(p.job), 1);
        ms += cm.transferMs(x.device, next, cm.payloadBytes(x.end, rowsOf(p.job)));
      }
    }
    events.push(t + ms, { kind: 'done', stage: i, finished });
  };

  for (let q = 0; q < r.concurrency; q++) events.push(0, { kind: 'arrive', job: { request: q, step: 0, stage: 0, rowsLeft: r.promptTokens } });
  let now = 0;
  while (events.size > 0) {
    const { t, v } = events.pop();
    now = t;
    if (v.kind === 'arrive') {
      queues[v.job.stage].push(v.job);
      if (!busy[v.job.stage]) start(v.job.stage, t);
      continue;
    }
    if (v.kind === 'free') {
      start(v.stage, t);
      continue;
    }
    // A step is done: finished jobs travel to the next stage; then (after what arrives at this same instant, as the
    // runtime's next step starts after the frames just produced are queued) the device takes its next step.
    const i = v.stage;
    const x = stages[i];
    const nextStage = (i + 1) % k;
    // Back at the first device, a token also waits for its coordinator's turn (sampling, streaming, the next step).
    const arrival = t + cm.latencyMs(x.device, stages[nextStage].device) + cm.tokenMs(x.end, stages[nextStage].device);
    for (const job of v.finished) {
      if (nextStage !== 0) {
        events.push(arrival, { kind: 'arrive', job: { ...job, stage: nextStage, rowsLeft: rowsOf(job) } });
        continue;
      }
      // Back at the first device: a token is out.
      if (job.step === 0) firstToken[job.request] = arrival;
      lastToken[job.request] = arrival;
      if (job.step + 1 < r.genTokens) events.push(arrival, { kind: 'arrive', job: { request: job.request, step: job.step + 1, stage: 0, rowsLeft: 1 } });
    }
    events.push(t, { kind: 'free', stage: i });
  }
  // The run ends when the last token reaches the first device.
  now = Math.max(now, ...lastToken);
  let ttft = 0;
  let perToken = 0;
  for (let q = 0; q < r.concurrency; q++) {
    ttft += firstToken[q];
    perToken += r.genTokens > 1 ? (lastToken[q] - firstToken[q]) / (r.genTokens - 1) : 0;
  }
  ttft /= r.concurrency;
  perToken /= r.concurrency;
  if (r.genTokens === 1) {
    // No decode step was simulated: report one decode step's ring time.
    perToken = stages.reduce((s, x, i) => s + cm.ringStageCost(x.device, x.start, x.end, stages[(i + 1) % k].device), 0);
  }
  return { ttftMs: ttft, tokenLatencyMs: perToken, throughputTokPerS: (r.concurrency * r.genTokens * 1000) / now, makespanMs: now };
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
