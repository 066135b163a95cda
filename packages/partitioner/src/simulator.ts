import type { Cluster } from './cluster.js';
import { CostModel } from './cost-model.js';
import type { ModelProfile } from './model-profile.js';
import type { Assignment, Plan } from './plan.js';
import type { RequestShape } from './request-shape.js';
import { InvalidPlanError } from './errors.js';

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
}

/**
 * Discrete-event model of the pipeline: `concurrency` requests start at t = 0; each is a prefill then genTokens − 1
 * decode steps travelling the ring. A device serves one job at a time in arrival order and is busy for its compute
 * (roofline, at the job's true KV position) plus sending the output; link latency is in flight. With one request
 * its per-token time equals the cost model's; with more, queueing at the slowest stage shows up.
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
  const events = new EventQueue<{ kind: 'arrive' | 'done'; job: Job }>();

  const serviceMs = (job: Job): number => {
    const x = stages[job.stage];
    const next = stages[(job.stage + 1) % k].device;
    const tokens = job.step === 0 ? r.promptTokens : 1;
    const compute = job.step === 0 ? cm.prefillMs(x.device, x.start, x.end) : cm.decodeMs(x.device, x.start, x.end, r.promptTokens + job.step - 1);
    return compute + cm.transferMs(x.device, next, cm.payloadBytes(x.end, tokens));
  };
  const start = (i: number, t: number) => {
    const job = queues[i].shift();
    busy[i] = job ? 1 : 0;
    if (job) events.push(t + serviceMs(job), { kind: 'done', job });
  };

  for (let q = 0; q < r.concurrency; q++) events.push(0, { kind: 'arrive', job: { request: q, step: 0, stage: 0 } });
  let now = 0;
  while (events.size > 0) {
    const { t, v } = events.pop();
    now = t;
    const { job } = v;
    const i = job.stage;
    if (v.kind === 'arrive') {
      queues[i].push(job);
      if (!busy[i]) start(i, t);
      continue;
    }
    // done: the device takes its next job; the output travels to the next stage.
    start(i, t);
    const x = stages[i];
    const nextStage = (i + 1) % k;
    const arrival = t + cm.latencyMs(x.device, stages[nextStage].device);
    if (nextStage !== 0) {
      events.push(arrival, { kind: 'arrive', job: { ...job, stage: nextStage } });
      continue;
    }
    // Back at the first device: a token is out.
    if (job.step === 0) firstToken[job.request] = arrival;
    lastToken[job.request] = arrival;
    if (job.step + 1 < r.genTokens) events.push(arrival, { kind: 'arrive', job: { request: job.request, step: job.step + 1, stage: 0 } });
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
