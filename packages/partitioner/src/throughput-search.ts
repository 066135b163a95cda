import type { StageCosts } from './stage-costs.js';
import type { Assignment } from './plan.js';
import type { Solution, Solver } from './solution.js';

/** Slowest stage's busy time per token (compute + send) of a plan. */
export function maxOccupancy(costs: StageCosts, a: readonly Assignment[]): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const next = a[(i + 1) % a.length].device;
    m = Math.max(m, costs.busy(x.device, x.start, x.end) + costs.send(x.device, next, x.end));
  }
  return m;
}

/** Pipeline period per token with c requests in flight: max(slowest stage, ring / c). */
export function periodOf(costs: StageCosts, s: Solution, concurrency: number): number {
  return Math.max(maxOccupancy(costs, s.assignments), s.cost / concurrency);
}

/**
 * Minimises max(max occupancy, ring / c) given a solver for "least ring with every occupancy ≤ τ".
 * The optimum's bottleneck is one of the candidate occupancies; least-ring(τ) only falls as τ grows, so the best τ
 * is where τ meets least-ring(τ)/c: binary search for the first candidate with least-ring(τ)/c ≤ τ, then compare
 * it with its predecessor. Exact whenever the solver is exact.
 */
export function minimizePeriod(
  costs: StageCosts,
  solve: Solver,
  candidates: (upTo: number) => Float64Array,
  concurrency: number,
  tolerance: number,
  preferFewestMoved: boolean,
): Solution | null {
  const p0 = solve(Infinity, 'cost');
  if (!p0) return null;
  const occ0 = maxOccupancy(costs, p0.assignments);
  let best: Solution = p0;
  let bestPeriod = periodOf(costs, p0, concurrency);
  if (p0.cost / concurrency < occ0) {
    const c = candidates(occ0);
    const g = (i: number): Solution | null => {
      const s = solve(c[i], 'cost');
      return s && s.cost / concurrency <= c[i] ? s : null;
    };
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (g(mid)) hi = mid;
      else lo = mid + 1;
    }
    const tries = [solve(c[lo], 'cost'), lo > 0 ? solve(c[lo - 1], 'cost') : null];
    for (const s of tries) {
      if (!s) continue;
      const p = periodOf(costs, s, concurrency);
      if (p < bestPeriod * (1 - tolerance) || (p <= bestPeriod * (1 + tolerance) && s.moved < best.moved)) {
        best = s;
        bestPeriod = p;
      }
    }
  }
  if (preferFewestMoved && best.moved > 0) {
    const bound = bestPeriod * (1 + tolerance);
    const q = solve(bound, 'moved');
    if (q && q.moved < best.moved && periodOf(costs, q, concurrency) <= bound) best = q;
  }
  return best;
}

/** Sorted distinct values ≤ upTo. */
export function sortedCandidates(values: number[], upTo: number): Float64Array {
  const a = Float64Array.from(values.filter((v) => v <= upTo * (1 + 1e-12)));
  a.sort();
  let k = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[k - 1]) a[k++] = a[i];
  return a.slice(0, k);
}

/** Every occupancy a stage of `devices` could have (any device as successor). */
export function occupancyCandidates(costs: StageCosts, devices: readonly number[], upTo: number, successors?: (i: number) => readonly number[]): Float64Array {
  const L = costs.L;
  const vals: number[] = [];
  devices.forEach((d, i) => {
    const nexts = successors ? successors(i) : devices;
    for (let s = 0; s < L; s++) {
      for (let e = s + 1; e <= L && costs.fits(d, s, e); e++) {
        const b = costs.busy(d, s, e);
        if (b > upTo) break;
        for (const nx of nexts) {
          if (nx === d && e < L) continue;
          const v = b + costs.send(d, nx, e);
          if (v <= upTo) vals.push(v);
        }
      }
    }
  });
  return sortedCandidates(vals, upTo);
}
