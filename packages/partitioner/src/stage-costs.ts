import type { CostModel } from './cost-model.js';
import type { Objective } from './plan.js';

/**
 * A plan's cost split into per-stage pieces that dynamic programs can add up:
 * additive cost = Σ compute(d, s, e) + hop(d, next, e); for throughput each stage's busy time
 * occupancy(d, s, e, next) must stay under a bound τ. `next` of the last stage (e = L) is the first device.
 */
export interface StageCosts {
  readonly L: number;
  compute(d: number, s: number, e: number): number;
  hop(a: number, b: number, e: number): number;
  /** Busy time of the stage per decode token, without sending: occupancy = busy + send. */
  busy(d: number, s: number, e: number): number;
  send(a: number, b: number, e: number): number;
  fits(d: number, s: number, e: number): boolean;
}

/**
 * latency: additive cost = one request's time (TTFT + (gen − 1) × per-token); no bound.
 * throughput: additive cost = per-token ring time; the period is max(max occupancy, ring / concurrency).
 */
export function stageCosts(cm: CostModel, objective: Objective): StageCosts {
  const r = cm.request;
  const g1 = r.genTokens - 1;
  const L = cm.L;
  const fits = (d: number, s: number, e: number): boolean => cm.fits(d, s, e);
  const busy = (d: number, s: number, e: number): number => cm.decodeMs(d, s, e);
  const send = (a: number, b: number, e: number): number => cm.transferMs(a, b, cm.payloadBytes(e, 1));
  if (objective === 'latency') {
    return {
      L,
      compute: (d, s, e) => cm.prefillMs(d, s, e) + g1 * cm.decodeMs(d, s, e),
      hop: (a, b, e) => cm.handoffMs(a, b, e, r.promptTokens) + g1 * cm.handoffMs(a, b, e, 1),
      busy,
      send,
      fits,
    };
  }
  return {
    L,
    compute: (d, s, e) => cm.decodeMs(d, s, e),
    hop: (a, b, e) => cm.handoffMs(a, b, e, 1),
    busy,
    send,
    fits,
  };
}

/** Layers of [s, e) that were not on device d in the previous plan (they would have to be loaded). */
export class MovedLayers {
  private readonly prefix: Int32Array[];
  constructor(n: number, L: number, previous: readonly { device: number; start: number; end: number }[]) {
    this.prefix = [];
    const owner = new Int32Array(L).fill(-1);
    for (const a of previous) for (let l = a.start; l < Math.min(a.end, L); l++) owner[l] = a.device;
    for (let d = 0; d < n; d++) {
      const p = new Int32Array(L + 1);
      for (let l = 0; l < L; l++) p[l + 1] = p[l] + (owner[l] === d ? 1 : 0);
      this.prefix.push(p);
    }
  }
  count(d: number, s: number, e: number): number {
    return e - s - (this.prefix[d][e] - this.prefix[d][s]);
  }
}

/** Cost comparison that treats relative differences below `tol` as ties. */
export function lessWithTies(a: number, am: number, b: number, bm: number, tol: number): boolean {
  const slack = tol * Math.max(Math.abs(a), Math.abs(b));
  if (a < b - slack) return true;
  if (a > b + slack) return false;
  return am < bm;
}
