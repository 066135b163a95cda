import type { PlanningModel } from './planning-model.js';
import type { MovedLayers, StageCosts } from './stage-costs.js';
import type { Objective } from './plan.js';
import type { Solution } from './solution.js';
import { allocateLayers } from './layer-allocation.js';
import { minimizePeriod, occupancyCandidates, periodOf } from './throughput-search.js';

/** Exact layer split (and period search) for one fixed ring order. */
export function solveOrder(
  cm: PlanningModel,
  costs: StageCosts,
  objective: Objective,
  order: readonly number[],
  tolerance: number,
  moved: MovedLayers | null,
): Solution | null {
  const solver = (tau: number, mode: 'cost' | 'moved') => allocateLayers(costs, order, tau, mode, tolerance, moved);
  if (objective === 'latency') return solver(Infinity, 'cost');
  const successors = (i: number) => [order[(i + 1) % order.length]];
  return minimizePeriod(costs, solver, (upTo) => occupancyCandidates(costs, order, upTo, successors), cm.request.concurrency, tolerance, moved !== null);
}

/** The objective value of a solution (request ms for latency, period ms for throughput). */
export function objectiveOf(cm: PlanningModel, costs: StageCosts, objective: Objective, s: Solution): number {
  return objective === 'latency' ? s.cost : periodOf(costs, s, cm.request.concurrency);
}

/** Symmetrised hop cost, for ordering a ring. */
function hopWeight(costs: StageCosts, a: number, b: number): number {
  return costs.hop(a, b, 1) + costs.hop(b, a, 1);
}

/**
 * Ring order for a chosen set: when links differ, nearest-neighbour tour + 2-opt on hop costs; otherwise any
 * order costs the same in hops, so devices go by memory (largest first: it holds the embedding).
 */
export function ringOrder(cm: PlanningModel, costs: StageCosts, set: readonly number[]): number[] {
  const byMemory = [...set].sort((a, b) => cm.cluster.devices[b].memoryBytes - cm.cluster.devices[a].memoryBytes || a - b);
  if (set.length <= 3) return byMemory;
  const w0 = hopWeight(costs, byMemory[0], byMemory[1]);
  let uniform = true;
  for (let i = 0; i < byMemory.length && uniform; i++) {
    for (let j = i + 1; j < byMemory.length; j++) {
      if (Math.abs(hopWeight(costs, byMemory[i], byMemory[j]) - w0) > 1e-12 * Math.max(1, w0)) {
        uniform = false;
        break;
      }
    }
  }
  if (uniform) return byMemory;
  const tour = [byMemory[0]];
  const left = new Set(byMemory.slice(1));
  while (left.size > 0) {
    const cur = tour[tour.length - 1];
    let bestD = -1;
    let bestW = Infinity;
    for (const d of left) {
      const w = hopWeight(costs, cur, d);
      if (w < bestW) {
        bestW = w;
        bestD = d;
      }
    }
    tour.push(bestD);
    left.delete(bestD);
  }
  // 2-opt on the closed tour.
  const k = tour.length;
  for (let pass = 0, improved = true; improved && pass < 20; pass++) {
    improved = false;
    for (let i = 0; i < k - 1; i++) {
      for (let j = i + 2; j < k; j++) {
        const a = tour[i];
        const b = tour[i + 1];
        const c = tour[j];
        const d = tour[(j + 1) % k];
        if (a === d) continue;
        const delta = hopWeight(costs, a, c) + hopWeight(costs, b, d) - hopWeight(costs, a, b) - hopWeight(costs, c, d);
        if (delta < -1e-12) {
          tour.splice(i + 1, j - i, ...tour.slice(i + 1, j + 1).reverse());
          improved = true;
        }
      }
    }
  }
  return tour;
}

/** First-stage candidates first (a training plan's first stage is its owner), then by memory, largest first. */
function byFirstStage(cm: PlanningModel, a: number, b: number): number {
  const first = (d: number) => (cm.fits(d, 0, 1) ? 0 : 1);
  return first(a) - first(b) || cm.cluster.devices[b].memoryBytes - cm.cluster.devices[a].memoryBytes;
}

/** Rotations of a tour that start at one of the devices able to hold the first stage, largest memory first (it holds the embedding). */
function rotations(cm: PlanningModel, tour: readonly number[], count: number): number[][] {
  const starts = tour.map((_, i) => i).sort((a, b) => byFirstStage(cm, tour[a], tour[b])).slice(0, count);
  return starts.map((i) => [...tour.slice(i), ...tour.slice(0, i)]);
}

/**
 * Heuristic planner for large fleets. Picks candidate device sets (latency: the fastest devices per layer that
 * together hold the model; throughput: the fewest devices that keep every stage under a bisected period), orders
 * each as a ring, splits layers exactly for that order, then drops devices while that helps.
 */
export function solveFast(cm: PlanningModel, costs: StageCosts, objective: Objective, tolerance: number, moved: MovedLayers | null): Solution | null {
  const layout = deviceLayout(cm, costs, objective);
  const best = new BestSolution(cm, costs, objective, tolerance);
  const solve = (order: number[]) => solveOrder(cm, costs, objective, order, tolerance, moved);
  const seen = new Set<string>();
  for (const set of candidateSets(cm, costs, objective, layout)) {
    const key = [...set].sort((a, b) => a - b).join(',');
    if (seen.has(key) || set.length > cm.L) continue;
    seen.add(key);
    const tour = ringOrder(cm, costs, set);
    for (const order of rotations(cm, tour, 3)) best.consider(solve(order));
  }
  if (!best.solution) {
    // Fall back to every usable device by memory: the most room there is.
    const all = [...layout.usable].sort((a, b) => byFirstStage(cm, a, b) || a - b).slice(0, cm.L);
    best.consider(solve(all));
  }
  dropDevicesWhileBetter(best, solve);
  return best.solution;
}

/** What the candidate sets are chosen by: each device's layer capacity as a middle stage and its cost per layer. */
interface DeviceLayout {
  /** First layer of a middle stage (1, or 0 for a one-layer model). */
  midS: number;
  cap: Int32Array;
  perLayer: Float64Array;
  /** Devices that can hold at least one layer somewhere. */
  usable: number[];
}

function deviceLayout(cm: PlanningModel, costs: StageCosts, objective: Objective): DeviceLayout {
  const { n, L } = cm;
  const midS = L > 1 ? 1 : 0;
  const cap = new Int32Array(n);
  const perLayer = new Float64Array(n);
  for (let d = 0; d < n; d++) {
    cap[d] = Math.min(L, cm.maxLayersFrom(d, midS));
    perLayer[d] = objective === 'latency' ? costs.compute(d, midS, midS + 1) : costs.busy(d, midS, midS + 1);
  }
  const usable = [...Array(n).keys()].filter((d) => cap[d] > 0 || cm.fits(d, 0, 1) || cm.fits(d, L - 1, L));
  return { midS, cap, perLayer, usable };
}

/** Device sets worth a ring: the objective's prefixes of sorted devices, then the likeliest single devices. */
function candidateSets(cm: PlanningModel, costs: StageCosts, objective: Objective, layout: DeviceLayout): number[][] {
  const sets = objective === 'latency' ? latencySets(cm, layout) : throughputSets(cm, costs, layout);
  // A single strong device often beats any ring (no hops): try the likeliest ones alone.
  const alone = [...layout.usable].filter((d) => cm.fits(d, 0, cm.L)).sort((a, b) => layout.perLayer[a] - layout.perLayer[b]).slice(0, 8);
  for (const d of alone) sets.push([d]);
  return sets;
}

/** The fastest devices per layer that together hold the model, and up to 3 more. */
function latencySets(cm: PlanningModel, { cap, perLayer, usable }: DeviceLayout): number[][] {
  const bySpeed = [...usable].sort((a, b) => perLayer[a] - perLayer[b] || cm.cluster.devices[b].memoryBytes - cm.cluster.devices[a].memoryBytes);
  return prefixSets(bySpeed, (d) => cap[d], 3, cm.L);
}

/** The fewest devices that keep every stage under a bisected period, and under a few larger periods (shorter rings). */
function throughputSets(cm: PlanningModel, costs: StageCosts, { midS, cap, perLayer, usable }: DeviceLayout): number[][] {
  const { n, L } = cm;
  const sendOf = Float64Array.from(usable.length ? Array.from({ length: n }, (_, d) => (n > 1 ? costs.send(d, d === 0 ? 1 : 0, 1) : 0)) : []);
  // Layers device d can take as a middle stage while its busy time stays ≤ tau.
  const capAt = (d: number, tau: number): number => {
    let lo = 0;
    let hi = cap[d];
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (costs.busy(d, midS, Math.min(L, midS + mid)) + sendOf[d] <= tau) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const total = (tau: number) => usable.reduce((s, d) => s + capAt(d, tau), 0);
  let hiT = 1;
  while (total(hiT) < L && hiT < 1e12) hiT *= 2;
  let loT = 0;
  for (let it = 0; it < 50; it++) {
    const mid = (loT + hiT) / 2;
    if (total(mid) >= L) hiT = mid;
    else loT = mid;
  }
  // Larger periods need fewer devices (shorter ring): try a few.
  const sets: number[][] = [];
  for (const f of [1, 1.15, 1.35, 1.7, 2.5]) {
    const tau = hiT * f;
    const byCap = [...usable].sort((a, b) => capAt(b, tau) - capAt(a, tau) || perLayer[a] - perLayer[b]);
    sets.push(...prefixSets(byCap, (d) => capAt(d, tau), 1, L));
  }
  return sets;
}

/** The shortest prefix of `sorted` whose capacities reach L layers, and the next `extra` longer ones (or all of it). */
function prefixSets(sorted: number[], capOf: (d: number) => number, extra: number, L: number): number[][] {
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) {
    sum += capOf(sorted[i]);
    if (sum >= L) {
      const sets: number[][] = [];
      for (let j = i; j <= Math.min(sorted.length - 1, i + extra); j++) sets.push(sorted.slice(0, j + 1));
      return sets;
    }
  }
  return sorted.length > 0 ? [sorted.slice()] : [];
}

/** The best solution considered so far by the objective's value; ties (within tolerance) go to fewer moved layers. */
class BestSolution {
  solution: Solution | null = null;
  private value = Infinity;
  constructor(
    private readonly cm: PlanningModel,
    private readonly costs: StageCosts,
    private readonly objective: Objective,
    private readonly tolerance: number,
  ) {}

  /** True when `s` is the new best. */
  consider(s: Solution | null): boolean {
    if (!s) return false;
    const v = objectiveOf(this.cm, this.costs, this.objective, s);
    if (v < this.value * (1 - this.tolerance) || (v <= this.value * (1 + this.tolerance) && this.solution !== null && s.moved < this.solution.moved)) {
      this.solution = s;
      this.value = v;
      return true;
    }
    return false;
  }
}

/** Drops devices while that helps (a device whose hop costs more than its layers save). */
function dropDevicesWhileBetter(best: BestSolution, solve: (order: number[]) => Solution | null): void {
  for (let round = 0; round < 8 && best.solution !== null; round++) {
    const cur: Solution = best.solution;
    if (cur.assignments.length <= 1 || cur.assignments.length > 24) break;
    let improved = false;
    for (let i = 0; i < cur.assignments.length && !improved; i++) {
      const order = cur.assignments.filter((_, j) => j !== i).map((a) => a.device);
      improved = best.consider(solve(order));
    }
    if (!improved) break;
  }
}
