import type { MovedLayers, StageCosts } from './stage-costs.js';
import { lessWithTies } from './stage-costs.js';
import type { Assignment } from './plan.js';
import type { Solution, SolveMode } from './solution.js';

/**
 * Best contiguous split of the layers over devices in a fixed ring order, every device taking ≥ 1 layer
 * (EdgeShard-style DP over (stage, first layer of the stage)). O(k · L²).
 */
export function allocateLayers(
  costs: StageCosts,
  order: readonly number[],
  tau: number,
  mode: SolveMode,
  tolerance: number,
  moved: MovedLayers | null,
): Solution | null {
  const k = order.length;
  const L = costs.L;
  if (k === 0 || k > L) return null;
  const L1 = L + 1;
  const bounded = Number.isFinite(tau);
  const cost = new Float64Array(k * L1).fill(Infinity);
  const movedAt = new Int32Array(k * L1);
  const parent = new Int32Array(k * L1).fill(-1);
  const better = (c1: number, m1: number, c2: number, m2: number): boolean =>
    mode === 'cost' ? lessWithTies(c1, m1, c2, m2, tolerance) : m1 < m2 || (m1 === m2 && c1 < c2);
  cost[0] = 0;
  let best: Solution | null = null;
  let bestState = -1;
  for (let i = 0; i < k; i++) {
    const d = order[i];
    const isLast = i === k - 1;
    const next = order[(i + 1) % k];
    const hopMid = L > 1 && !isLast ? costs.hop(d, next, 1) : 0;
    const sendMid = L > 1 && !isLast ? costs.send(d, next, 1) : 0;
    // Stage i starts at s ≥ i (one layer per earlier stage) and leaves ≥ 1 layer per later stage.
    for (let s = i; s <= L - (k - i); s++) {
      const st = i * L1 + s;
      const c = cost[st];
      if (c === Infinity) continue;
      const eLo = isLast ? L : s + 1;
      const eHi = isLast ? L : L - (k - 1 - i);
      for (let e = s + 1; e <= eHi; e++) {
        if (!costs.fits(d, s, e)) break;
        if (e < eLo) continue;
        const busy = bounded ? costs.busy(d, s, e) : 0;
        const mm = movedAt[st] + (moved ? moved.count(d, s, e) : 0);
        if (isLast) {
          if (bounded && busy + costs.send(d, next, L) > tau) continue;
          const total = c + costs.compute(d, s, e) + costs.hop(d, next, L);
          if (best === null || better(total, mm, best.cost, best.moved)) {
            best = { assignments: [], cost: total, moved: mm };
            bestState = st;
          }
        } else {
          if (bounded && busy + sendMid > tau) continue;
          const nc = c + costs.compute(d, s, e) + hopMid;
          const st2 = (i + 1) * L1 + e;
          if (cost[st2] === Infinity || better(nc, mm, cost[st2], movedAt[st2])) {
            cost[st2] = nc;
            movedAt[st2] = mm;
            parent[st2] = st;
          }
        }
      }
    }
  }
  if (best === null) return null;
  const out: Assignment[] = [];
  let end = L;
  let cur = bestState;
  while (cur !== -1) {
    const i = Math.floor(cur / L1);
    const s = cur % L1;
    out.unshift({ device: order[i], start: s, end });
    end = s;
    cur = parent[cur];
  }
  best.assignments = out;
  return best;
}
