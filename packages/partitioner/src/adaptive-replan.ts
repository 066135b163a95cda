import type { Cluster } from './cluster.js';
import { CostModel } from './cost-model.js';
import type { ModelProfile } from './model-profile.js';
import type { Plan, PlanCost } from './plan.js';
import type { RequestShape } from './request-shape.js';

/** When a running cluster changes its plan because devices got slower, faster, or short of memory. */
export interface ReplanPolicy {
  /** Smallest relative gain in predicted per-token latency worth a move. Default 0.2 (20 %). */
  minGain?: number;
  /** Smallest absolute gain per token, ms. Default 0.5. */
  minGainMs?: number;
  /** Least time between two load-driven plan changes: the hysteresis that keeps a plan from flapping. Default 10 s. */
  minIntervalMs?: number;
  /** Tokens over which a move must pay back the time it costs. Default 500. */
  paybackTokens?: number;
}

/** The plan in force and the best alternative, both priced with the devices' figures of now. */
export interface ReplanSituation {
  /** Predicted ms/token of the plan in force under current figures. */
  currentMs: number;
  /** False when the plan in force no longer fits the devices' memory (a device lowered its budget). */
  currentFits: boolean;
  /** Predicted ms/token of the best plan now. */
  candidateMs: number;
  /** Layers the candidate moves to another device. */
  movedLayers: number;
  /** Predicted time to bring the moved layers to their new devices. */
  moveMs: number;
  /** Time since the plan last changed because of load. */
  sinceLastChangeMs: number;
}

export type ReplanDecision = { replan: boolean; reason: string };

/**
 * Whether to switch plans. A plan that no longer fits in memory is left at once; otherwise the switch must be
 * predicted to gain at least `minGain` (and `minGainMs`), pay back its moving cost within `paybackTokens`, and
 * come at least `minIntervalMs` after the previous change.
 */
export function decideReplan(s: ReplanSituation, policy: ReplanPolicy = {}): ReplanDecision {
  if (s.movedLayers === 0) return { replan: false, reason: 'the best plan is the one in force' };
  if (!s.currentFits) return { replan: true, reason: 'the plan in force no longer fits in memory' };
  const gainMs = s.currentMs - s.candidateMs;
  const gain = gainMs / s.currentMs;
  const minGain = policy.minGain ?? 0.2;
  const minGainMs = policy.minGainMs ?? 0.5;
  const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
  if (!(gain >= minGain) || gainMs < minGainMs) {
    return { replan: false, reason: `predicted gain ${pct(Math.max(0, gain))} (${Math.max(0, gainMs).toFixed(1)} ms/token) is below the ${pct(minGain)} threshold` };
  }
  const payback = policy.paybackTokens ?? 500;
  if (s.moveMs > gainMs * payback) {
    return { replan: false, reason: `moving ${s.movedLayers} layers (${s.moveMs.toFixed(0)} ms) would not pay back within ${payback} tokens` };
  }
  const minInterval = policy.minIntervalMs ?? 10_000;
  if (s.sinceLastChangeMs < minInterval) {
    return { replan: false, reason: `the plan changed ${(s.sinceLastChangeMs / 1000).toFixed(1)} s ago (hysteresis: at least ${(minInterval / 1000).toFixed(0)} s)` };
  }
  return { replan: true, reason: `predicted ${s.currentMs.toFixed(1)} → ${s.candidateMs.toFixed(1)} ms/token (${pct(gain)} faster)` };
}

/**
 * A plan's cost under other device figures (same devices, same layers): how the plan in force fares now that a
 * device got slower. Devices of the plan missing from `cluster` make it unusable (Infinity, does not fit).
 */
export function repricePlan(plan: Plan, profile: ModelProfile, cluster: Cluster, request: RequestShape): { cost: PlanCost | null; fitsInMemory: boolean } {
  const index = new Map(cluster.devices.map((d, i) => [d.id, i]));
  const stages = plan.stages.filter((s) => s.endLayer > s.startLayer);
  if (stages.some((s) => !index.has(s.device))) return { cost: null, fitsInMemory: false };
  const cm = new CostModel(profile, cluster, request);
  const { cost, fitsInMemory } = cm.evaluate(
    stages.map((s) => ({ device: index.get(s.device)!, start: s.startLayer, end: s.endLayer })),
    plan.objective,
  );
  return { cost, fitsInMemory };
}

/**
 * Predicted time to bring `next`'s stages onto their devices: a device whose range changes loads its whole new range
 * (a runtime holds each range as one unit), at `loadMBps` divided by that device's slowdown; devices load in
 * parallel, so the slowest one decides.
 */
export function moveCostMs(previous: Plan, next: Plan, profile: ModelProfile, loadMBps: number, slowdownOf: (device: string) => number = () => 1): number {
  const held = new Set(previous.stages.map((s) => `${s.device}\u0000${s.startLayer}\u0000${s.endLayer}`));
  let worst = 0;
  for (const s of next.stages) {
    if (s.endLayer <= s.startLayer || held.has(`${s.device}\u0000${s.startLayer}\u0000${s.endLayer}`)) continue;
    let bytes = 0;
    for (let l = s.startLayer; l < s.endLayer; l++) bytes += profile.layers[l].weightBytes;
    worst = Math.max(worst, (bytes / (loadMBps * 1e3)) * Math.max(1, slowdownOf(s.device)));
  }
  return worst;
}

/** A load-driven change made earlier, and how its former plan fares now. */
export interface RestoreSituation {
  /** Predicted ms/token of the plan in force under current figures. */
  currentMs: number;
  /** Predicted ms/token of the plan the change replaced, under current figures (Infinity if a device is gone). */
  formerMs: number;
  formerFits: boolean;
  /** Every device whose load caused the change is back to the state it had under the former plan. */
  causeCleared: boolean;
  /** Why the cause counts as cleared, leading the reason of a return (default: "the cause is cleared"). */
  clearedBecause?: string;
  sinceLastChangeMs: number;
}

/**
 * Whether to go back to the plan a load-driven change replaced. Among devices alike in speed, the plan in force
 * may be no slower than the former one, yet the former is the one the planner chose for the quiet fleet (the
 * helpers took extra layers, and their memory, only to cover for the busy device). So once the cause is cleared,
 * the former plan comes back if it is predicted at most `tolerance` slower (default 25 %: it was the best plan
 * when all was quiet, and a device just back from a slowdown reads slow for a while — its calibration is noise), after the hysteresis
 * interval.
 */
export function decideRestore(s: RestoreSituation, policy: ReplanPolicy & { tolerance?: number } = {}): ReplanDecision {
  if (!s.causeCleared) return { replan: false, reason: 'the device that caused the last change is still busy' };
  if (!s.formerFits || !Number.isFinite(s.formerMs)) return { replan: false, reason: 'the former plan no longer fits the devices' };
  const minInterval = policy.minIntervalMs ?? 10_000;
  if (s.sinceLastChangeMs < minInterval) {
    return { replan: false, reason: `the plan changed ${(s.sinceLastChangeMs / 1000).toFixed(1)} s ago (hysteresis: at least ${(minInterval / 1000).toFixed(0)} s)` };
  }
  const tolerance = policy.tolerance ?? 0.25;
  if (s.formerMs > s.currentMs * (1 + tolerance)) {
    return { replan: false, reason: `the former plan would be slower (${s.formerMs.toFixed(1)} vs ${s.currentMs.toFixed(1)} ms/token)` };
  }
  return { replan: true, reason: `${s.clearedBecause ?? 'the cause is cleared'}: back to the former plan (predicted ${s.currentMs.toFixed(1)} → ${s.formerMs.toFixed(1)} ms/token)` };
}
