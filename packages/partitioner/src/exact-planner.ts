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
  const L = costs.L;
  const L1 = L + 1;
  const bounded = Number.isFinite(tau);
  // Tables over local device indices.
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
  const hopMid = new Float64Array(m * m);
  const hopRet = new Float64Array(m * m);
  const sendMid = new Float64Array(m * m);
  const sendRet = new Float64Array(m * m);
  const mid = Math.min(1, L - 1); // any e < L carries a hidden state
  for (let a = 0; a < m; a++) {
    for (let b = 0; b < m; b++) {
      hopRet[a * m + b] = costs.hop(devices[a], devices[b], L);
      sendRet[a * m + b] = costs.send(devices[a], devices[b], L);
      if (L > 1 && a !== b) {
        hopMid[a * m + b] = costs.hop(devices[a], devices[b], mid);
        sendMid[a * m + b] = costs.send(devices[a], devices[b], mid);
      }
    }
  }
  const better = (c1: number, m1: number, c2: number, m2: number): boolean =>
    mode === 'cost' ? lessWithTies(c1, m1, c2, m2, tolerance) : m1 < m2 || (m1 === m2 && c1 < c2);

  const full = 1 << m;
  const size = full * m * L1;
  const cost = new Float64Array(size);
  const movedAt = new Int32Array(size);
  const parent = new Int32Array(size);
  let best: Solution | null = null;

  for (let f = 0; f < m; f++) {
    cost.fill(Infinity);
    const init = ((1 << f) * m + f) * L1;
    cost[init] = 0;
    movedAt[init] = 0;
    parent[init] = -1;
    for (let mask = 0; mask < full; mask++) {
      if (!(mask & (1 << f))) continue;
      for (let last = 0; last < m; last++) {
        if (!(mask & (1 << last))) continue;
        const base = (mask * m + last) * L1;
        for (let s = 0; s < L; s++) {
          const st = base + s;
          const c = cost[st];
          if (c === Infinity) continue;
          const cm0 = movedAt[st];
          const eMax = maxE[last * L1 + s];
          const row = (last * L1 + s) * L1;
          for (let e = s + 1; e <= eMax; e++) {
            const cc = c + comp[row + e];
            const mm = cm0 + mv[row + e];
            if (e === L) {
              if (bounded && busy[row + e] + sendRet[last * m + f] > tau) continue;
              const total = cc + hopRet[last * m + f];
              if (best === null || better(total, mm, best.cost, best.moved)) {
                best = { assignments: reconstruct(parent, st, L, L1, m, devices), cost: total, moved: mm };
              }
              continue;
            }
            const b = busy[row + e];
            for (let d = 0; d < m; d++) {
              if (mask & (1 << d)) continue;
              if (bounded && b + sendMid[last * m + d] > tau) continue;
              const nc = cc + hopMid[last * m + d];
              const st2 = ((mask | (1 << d)) * m + d) * L1 + e;
              if (cost[st2] === Infinity || better(nc, mm, cost[st2], movedAt[st2])) {
                cost[st2] = nc;
                movedAt[st2] = mm;
                parent[st2] = st;
              }
            }
          }
        }
      }
    }
  }
  return best;
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
