import type { Cluster } from './cluster.js';
import type { ModelProfile } from './model-profile.js';
import type { Plan } from './plan.js';
import type { RequestShape } from './request-shape.js';
import type { PlanOptions } from './planner.js';
import { planPipeline } from './planner.js';

/** Layers whose device changes from `previous` to `next` (each must be loaded by its new device). */
export function movedLayers(previous: Plan, next: Plan): number {
  const owner = new Map<number, string>();
  for (const s of previous.stages) for (let l = s.startLayer; l < s.endLayer; l++) owner.set(l, s.device);
  let moved = 0;
  for (const s of next.stages) for (let l = s.startLayer; l < s.endLayer; l++) if (owner.get(l) !== s.device) moved++;
  return moved;
}

/**
 * Re-plans after devices joined or left: the best plan for the new cluster, and among plans of equal cost
 * (within `tolerance`, relative; default 1e-9 — raise it to trade a little speed for stability) the one that moves
 * the fewest layers.
 */
export function replan(
  previous: Plan,
  profile: ModelProfile,
  cluster: Cluster,
  request: RequestShape,
  options: Omit<PlanOptions, 'previous'> = {},
): { plan: Plan; movedLayers: number } {
  const plan = planPipeline(profile, cluster, request, { objective: previous.objective, ...options, previous });
  return { plan, movedLayers: movedLayers(previous, plan) };
}
