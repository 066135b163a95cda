import type { MovedLayers, StageCosts } from './stage-costs.js';
import { lessWithTies } from './stage-costs.js';
import type { Assignment } from './plan.js';
import type { Solution, SolveMode } from './solution.js';

/** Exhaustive search is exponential in the number of devices; past this the fast planner is used. */
export const MAX_EXACT_DEVICES = 8;

/**
 * Exact optimum over every subset of `devices`, every ring order and every contiguous layer split.
 * Dynamic program over (first device, set of used devices, current device, first layer of its open stage) — a
 * Held-Karp tour DP whose "cities" also carry a layer boundary. Cost O(n · 2^n · n² · L²) before memory pruning.
 */
export function solveExact(
  costs: StageCosts,
  devices: readonly number[],
  tau: number,
  mode: SolveMode,
  tolerance: number,
  moved: MovedLayers | null,
): Solution | null {
  const m = devices.length;
  if (m > 12) throw new RangeError(`the exact planner enumerates device subsets; ${m} devices is too many (max 12)`);
  if (m === 0) return null;
  const better = (c1: number, m1: number, c2: number, m2: number): boolean =>
    mode === 'cost' ? lessWithTies(c1, m1, c2, m2, tolerance) : m1 < m2 || (m1 === m2 && c1 < c2);
  const search = new RingSearch(costs, devices, tau, moved, better);
  let best: Solution | null = null;
  for (let f = 0; f < m; f++) best = search.from(f, best);
  return best;
}

/** Every stage's costs, over local device indices: [device][start][end] and the last end that fits from each start. */
interface StageTables {
  comp: Float64Array;
  busy: Float64Array;
  mv: Int32Array;
  maxE: Int32Array;
}

function stageTables(costs: StageCosts, devices: readonly number[], moved: MovedLayers | null): StageTables {
  const m = devices.length;
  const L = costs.L;
  const L1 = L + 1;
  const comp = new Float64Array(m * L1 * L1);
  const busy = new Float64Array(m * L1 * L1);
  const mv = new Int32Array(m * L1 * L1);
  const maxE = new Int32Array(m * L1);
  for (let i = 0; i < m; i++) {
    const d = devices[i];
    for (let s = 0; s < L; s++) {
      let e = s + 1;
      while (e <= L && costs.fits(d, s, e)) {
        const k = (i * L1 + s) * L1 + e;
        comp[k] = costs.compute(d, s, e);
        busy[k] = costs.busy(d, s, e);
        mv[k] = moved ? moved.count(d, s, e) : 0;
        e++;
      }
      maxE[i * L1 + s] = e - 1;
    }
  }
  return { comp, busy, mv, maxE };
}

/** Hop and send costs between local devices [a][b]: mid-ring (a hidden state) and the return to the first (a token). */
interface HopTables {
  hopMid: Float64Array;
  hopRet: Float64Array;
  sendMid: Float64Array;
  sendRet: Float64Array;
}

function hopTables(costs: StageCosts, devices: readonly number[]): HopTables {
  const m = devices.length;
  const L = costs.L;
  const t: HopTables = { hopMid: new Float64Array(m * m), hopRet: new Float64Array(m * m), sendMid: new Float64Array(m * m), sendRet: new Float64Array(m * m) };
  const mid = Math.min(1, L - 1); // any e < L carries a hidden state
  for (let a = 0; a < m; a++) {
    for (let b = 0; b < m; b++) {
      t.hopRet[a * m + b] = costs.hop(devices[a], devices[b], L);
      t.sendRet[a * m + b] = costs.send(devices[a], devices[b], L);
      if (L > 1 && a !== b) {
        t.hopMid[a * m + b] = costs.hop(devices[a], devices[b], mid);
        t.sendMid[a * m + b] = costs.send(devices[a], devices[b], mid);
      }
    }
  }
  return t;
}

/** The DP's tables and state arrays, reused for each first device of the ring. */
class RingSearch {
  private readonly m: number;
  private readonly L: number;
  private readonly L1: number;
  private readonly full: number;
  private readonly bounded: boolean;
  private readonly stages: StageTables;
  private readonly hops: HopTables;
  private readonly cost: Float64Array;
  private readonly movedAt: Int32Array;
  private readonly parent: Int32Array;

  constructor(
    costs: StageCosts,
    private readonly devices: readonly number[],
    private readonly tau: number,
    moved: MovedLayers | null,
    private readonly better: (c1: number, m1: number, c2: number, m2: number) => boolean,
  ) {
    this.m = devices.length;
    this.L = costs.L;
    this.L1 = this.L + 1;
    this.full = 1 << this.m;
    this.bounded = Number.isFinite(tau);
    this.stages = stageTables(costs, devices, moved);
    this.hops = hopTables(costs, devices);
    const size = this.full * this.m * this.L1;
    this.cost = new Float64Array(size);
    this.movedAt = new Int32Array(size);
    this.parent = new Int32Array(size);
  }

  /** The best ring starting on local device f, or `best` if none is better. */
  from(f: number, best: Solution | null): Solution | null {
    const { m, L1, cost } = this;
    cost.fill(Infinity);
    const init = ((1 << f) * m + f) * L1;
    cost[init] = 0;
    this.movedAt[init] = 0;
    this.parent[init] = -1;
    for (let mask = 0; mask < this.full; mask++) {
      if (!(mask & (1 << f))) continue;
      for (let last = 0; last < m; last++) {
        if (!(mask & (1 << last))) continue;
        const base = (mask * m + last) * L1;
        for (let s = 0; s < this.L; s++) {
          if (cost[base + s] !== Infinity) best = this.extend(f, mask, last, s, best);
        }
      }
    }
    return best;
  }

  /** Every stage [s, e) on `last` after state (mask, last, s): closing the ring at e = L, else handing on to an unused device. */
  private extend(f: number, mask: number, last: number, s: number, best: Solution | null): Solution | null {
    const { m, L, L1, cost, movedAt, hops } = this;
    const { comp, busy, mv, maxE } = this.stages;
    const st = (mask * m + last) * L1 + s;
    const c = cost[st];
    const cm0 = movedAt[st];
    const eMax = maxE[last * L1 + s];
    const row = (last * L1 + s) * L1;
    for (let e = s + 1; e <= eMax; e++) {
      const cc = c + comp[row + e];
      const mm = cm0 + mv[row + e];
      if (e === L) {
        if (this.bounded && busy[row + e] + hops.sendRet[last * m + f] > this.tau) continue;
        const total = cc + hops.hopRet[last * m + f];
        if (best === null || this.better(total, mm, best.cost, best.moved)) {
          best = { assignments: reconstruct(this.parent, st, L, L1, m, this.devices), cost: total, moved: mm };
        }
        continue;
      }
      const b = busy[row + e];
      for (let d = 0; d < m; d++) {
        if (mask & (1 << d)) continue;
        if (this.bounded && b + hops.sendMid[last * m + d] > this.tau) continue;
        const nc = cc + hops.hopMid[last * m + d];
        const st2 = ((mask | (1 << d)) * m + d) * L1 + e;
        if (cost[st2] === Infinity || this.better(nc, mm, cost[st2], movedAt[st2])) {
          cost[st2] = nc;
          movedAt[st2] = mm;
          this.parent[st2] = st;
        }
      }
    }
    return best;
  }
}

function reconstruct(parent: Int32Array, st: number, L: number, L1: number, m: number, devices: readonly number[]): Assignment[] {
  const out: Assignment[] = [];
  let end = L;
  let cur = st;
  while (cur !== -1) {
    const s = cur % L1;
    const last = Math.floor(cur / L1) % m;
    out.unshift({ device: devices[last], start: s, end });
    end = s;
    cur = parent[cur];
  }
  return out;
}
