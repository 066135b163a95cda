import { evaluateSplit, modelProfile, simulate, type Cluster, type ModelShape } from '@edge-node/partitioner';
import type { BenchHop, BenchResponse, BenchRun } from '@edge-node/node';

/**
 * One measured configuration: a split at a concurrency, or a baseline. Rates and TTFT are medians over the runs;
 * tokenLatencyMs and the parts are means per decode step (means add up, medians do not).
 */
export interface BenchRow {
  kind: 'pipeline' | 'local' | 'llama.cpp';
  label: string;
  /** Layers per stage, in ring order. */
  split: number[];
  concurrency: number;
  promptTokens: number;
  genTokens: number;
  /** Measured runs (after the warm-up); with concurrency c, each run is c requests at once. */
  runs: number;
  ttftMs: number;
  prefillTokPerS: number;
  /** One request's decode speed. */
  decodeTokPerS: number;
  /** Generated tokens of all requests in flight / time until the last finished (concurrency > 1: the pipeline's). */
  throughputTokPerS: number;
  /** The whole: one request's wall time per generated token during decode (mean over the runs). */
  tokenLatencyMs: number;
  /** Per-token round trips seen by the coordinator (all decode steps of all runs). */
  tokenLatencyP50Ms: number;
  tokenLatencyP95Ms: number;
  stages: { name: string; startLayer: number; endLayer: number; computeMs: number; prefillComputeMs: number }[];
  hops: { from: string; to: string; prefillBytes: number; decodeBytes: number; transferMs: number }[];
  /**
   * The parts of one decode step: stage compute, wire transfer over the hops, queueing (waiting for a busy stage,
   * in-process handoffs), and the coordinator's own time between a token and the next step (sampling, streaming);
   * sumMs is their total, to set against tokenLatencyMs.
   */
  parts: { computeMs: number; transferMs: number; queueMs: number; coordinatorMs: number; sumMs: number };
  predicted: {
    ttftMs: number;
    tokenLatencyMs: number;
    throughputTokPerS: number;
    stageComputeMs: number[];
    /** Each stage's compute for the whole prompt (beside the stages' measured prefillComputeMs): what TTFT adds up. */
    stagePromptMs?: number[];
    hopMs: number[];
    /** The devices (ring order) and links the prediction was made from: what to read when it is off. */
    from: Pick<Cluster, 'devices' | 'links'>;
  } | null;
  /** (measured − predicted) / predicted × 100. */
  errorPct: { ttft: number; tokenLatency: number; throughput: number } | null;
  /** Anything a reader of this row must know (e.g. why there is no prediction). */
  note?: string;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
export const mean = (xs: readonly number[]) => (xs.length === 0 ? Number.NaN : sum(xs) / xs.length);

/**
 * How a step's time off-compute is shared among the hops: each gets the ring's median link latency (a single link's
 * RTT measurement is too noisy to tell hops apart: it rises whenever a node is busy computing) plus its decode
 * frame's bytes over that link's measured bandwidth.
 */
function hopWeights(cluster: Cluster | null, hops: readonly BenchHop[]): number[] {
  const links = hops.map((h) => cluster?.links.find((l) => l.from === h.from && l.to === h.to) ?? cluster?.defaultLink ?? { latencyMs: 1, bandwidthMBps: 100 });
  const latency = median(links.map((l) => l.latencyMs));
  return hops.map((h, i) => latency + h.decodeBytes / (links[i].bandwidthMBps * 1000));
}

/** Throughput of a batch: all tokens of its requests over the time until the last one finished (from its arrival). */
export function throughputOf(batch: readonly BenchResponse[]): number {
  const tokens = sum(batch.flatMap((r) => r.runs.map((x) => x.generatedTokens)));
  const span = Math.max(...batch.flatMap((r) => r.runs.map((x) => x.queueWaitMs + x.totalMs)));
  return (tokens / span) * 1000;
}

/** A run's wall ms per generated token during decode. */
const perToken = (r: BenchRun) => (r.generatedTokens > 1 ? r.decodeMs / (r.generatedTokens - 1) : Number.NaN);

export interface PipelineMeasurement {
  split: number[];
  concurrency: number;
  /** Each entry: the requests that ran at once (one response per request; at concurrency 1, one). */
  batches: BenchResponse[][];
  /** Transfer ms per hop measured alone (concurrency 1) for the same split: what waiting is measured against. */
  transferAlone?: number[];
}

/**
 * Turns bench responses into a row. Per decode step, round trip − Σ stage compute is time on the wire and waiting;
 * at concurrency 1 it is split over the network hops (see hopWeights). At higher concurrency the hops keep their alone-figures and the rest is queueing.
 */
export function pipelineRow(m: PipelineMeasurement, cluster: Cluster | null, prediction: BenchRow['predicted']): BenchRow {
  const all = m.batches.flat();
  const first = all[0];
  const runs = all.flatMap((r) => r.runs);
  const k = first.route.stages.length;
  const steps = runs.flatMap((r) => r.steps.slice(1));
  const prefillSteps = runs.map((r) => r.steps[0]).filter((s) => s !== undefined);
  const hops = first.hops;
  const weights = hopWeights(cluster, hops);
  const wsum = sum(weights);
  const overhead = steps.map((s) => s.roundTripMs - sum(s.stageMs));
  let transferMs: number[];
  if (m.transferAlone) transferMs = m.transferAlone;
  else transferMs = hops.map((_, i) => mean(overhead.map((o) => Math.max(0, o) * (weights[i] / wsum))));
  // Means, not medians: the parts of a step add up only as means (p50/p95 show the spread).
  const stageCompute = Array.from({ length: k }, (_, i) => mean(steps.map((s) => s.stageMs[i] ?? Number.NaN)));
  const computeMs = sum(stageCompute);
  const transfer = sum(transferMs);
  const queueMs = Math.max(0, mean(steps.map((s) => s.roundTripMs)) - computeMs - transfer);
  const coordinatorMs = mean(steps.map((s) => s.coordinatorMs));
  const batchThroughput = m.batches.map(throughputOf);
  const row: BenchRow = {
    kind: 'pipeline',
    label: m.split.join(','),
    split: m.split,
    concurrency: m.concurrency,
    promptTokens: first.runs[0].promptTokens,
    genTokens: first.runs[0].generatedTokens,
    runs: m.batches.length,
    ttftMs: median(runs.map((r) => r.ttftMs)),
    prefillTokPerS: median(runs.map((r) => r.prefillTokPerS)),
    decodeTokPerS: median(runs.map((r) => r.decodeTokPerS)),
    throughputTokPerS: median(batchThroughput),
    tokenLatencyMs: mean(runs.map(perToken)),
    tokenLatencyP50Ms: quantile(steps.map((s) => s.roundTripMs), 0.5),
    tokenLatencyP95Ms: quantile(steps.map((s) => s.roundTripMs), 0.95),
    stages: first.route.stages.map((s, i) => ({
      name: s.name,
      startLayer: s.startLayer,
      endLayer: s.endLayer,
      computeMs: stageCompute[i],
      prefillComputeMs: median(prefillSteps.map((p) => p.stageMs[i] ?? Number.NaN)),
    })),
    hops: hops.map((h, i) => ({ from: nameOf(first, h.from), to: nameOf(first, h.to), prefillBytes: h.prefillBytes, decodeBytes: h.decodeBytes, transferMs: transferMs[i] ?? 0 })),
    parts: { computeMs, transferMs: transfer, queueMs, coordinatorMs, sumMs: computeMs + transfer + queueMs + coordinatorMs },
    predicted: prediction,
    errorPct: null,
  };
  row.errorPct = errorsOf(row);
  return row;
}

function nameOf(r: BenchResponse, peerId: string): string {
  return r.route.stages.find((s) => s.peerId === peerId)?.name ?? (peerId === r.coordinator ? 'coordinator' : peerId.slice(-8));
}

export function errorsOf(row: BenchRow): BenchRow['errorPct'] {
  const p = row.predicted;
  if (!p) return null;
  const pct = (measured: number, predicted: number) => ((measured - predicted) / predicted) * 100;
  return { ttft: pct(row.ttftMs, p.ttftMs), tokenLatency: pct(row.tokenLatencyMs, p.tokenLatencyMs), throughput: pct(row.throughputTokPerS, p.throughputTokPerS) };
}

/**
 * The partitioner's prediction for a split on the first split.length devices of the cluster (ring order: the
 * coordinator is device 0 and stage 0), from the profiles the nodes measured.
 */
export function predictSplit(shape: ModelShape, cluster: Cluster, split: number[], promptTokens: number, genTokens: number, concurrency: number): NonNullable<BenchRow['predicted']> {
  const profile = modelProfile(shape);
  const sub: Cluster = { ...cluster, devices: cluster.devices.slice(0, split.length) };
  const request = { promptTokens, genTokens, contextTokens: promptTokens + genTokens, concurrency };
  const plan = evaluateSplit(profile, sub, request, split);
  const sim = simulate(plan, { model: profile, cluster: sub }, request);
  return {
    ttftMs: sim.ttftMs,
    tokenLatencyMs: sim.tokenLatencyMs,
    throughputTokPerS: sim.throughputTokPerS,
    stageComputeMs: plan.stages.map((s) => s.computeMs),
    stagePromptMs: plan.stages.map((s) => s.promptMs),
    // A 1-stage ring on its coordinator sends nothing over the network.
    hopMs: plan.stages.length > 1 ? plan.stages.map((s) => s.hopMs) : [],
    from: { devices: sub.devices, links: sub.links.filter((l) => sub.devices.some((d) => d.id === l.from) && sub.devices.some((d) => d.id === l.to)) },
  };
}

/** A single-device row (no network): every step is compute, and the generation loop between steps its coordinator's time. */
export function singleDeviceRow(kind: 'local' | 'llama.cpp', label: string, layers: number, concurrency: number, t: {
  promptTokens: number;
  genTokens: number;
  ttftMs: number[];
  prefillTokPerS: number[];
  decodeTokPerS: number[];
  /** Wall ms per generated token, one per run. */
  tokenLatencyMs: number[];
  /** Every decode step's ms over all runs. */
  stepMs: number[];
  /** The generation loop's own ms before each decode step, when timed (this process's row): the coordinator's part. */
  loopMs?: number[];
  prefillMs: number[];
}, prediction: BenchRow['predicted'], note?: string): BenchRow {
  const step = mean(t.stepMs);
  const loop = t.loopMs && t.loopMs.length > 0 ? mean(t.loopMs) : 0;
  const row: BenchRow = {
    kind,
    label,
    split: [layers],
    concurrency,
    promptTokens: t.promptTokens,
    genTokens: t.genTokens,
    runs: t.ttftMs.length,
    ttftMs: median(t.ttftMs),
    prefillTokPerS: median(t.prefillTokPerS),
    decodeTokPerS: median(t.decodeTokPerS),
    throughputTokPerS: median(t.decodeTokPerS),
    tokenLatencyMs: mean(t.tokenLatencyMs),
    tokenLatencyP50Ms: quantile(t.stepMs, 0.5),
    tokenLatencyP95Ms: quantile(t.stepMs, 0.95),
    stages: [{ name: kind === 'local' ? 'this process' : 'llama.cpp', startLayer: 0, endLayer: layers, computeMs: step, prefillComputeMs: median(t.prefillMs) }],
    hops: [],
    parts: { computeMs: step, transferMs: 0, queueMs: 0, coordinatorMs: loop, sumMs: step + loop },
    predicted: prediction,
    errorPct: null,
    ...(note ? { note } : {}),
  };
  row.errorPct = errorsOf(row);
  return row;
}
