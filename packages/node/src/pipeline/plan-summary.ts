import type { ClusterPlan } from './cluster-plan.js';

/** The plan as /v1/cluster and `edge-node status` show it. */
export interface PlanSummary {
  id: string;
  strategy: string;
  objective: string;
  stages: { peerId: string; name: string; startLayer: number; endLayer: number; memoryBytes: number; stageMs: number }[];
  excluded: { device: string; reason: string }[];
  predicted: { ttftMs: number; tokenLatencyMs: number; throughputTokPerS: number };
  /** Whose split or rule made the plan, the same on every node: its name and why. */
  owner: { name: string; peerId: string; why: string } | null;
}

export function planSummary(p: ClusterPlan): PlanSummary {
  const byDevice = new Map(p.plan.stages.map((s) => [s.device, s]));
  return {
    id: p.id,
    strategy: p.plan.strategy,
    objective: p.plan.objective,
    stages: p.stages.map((s) => ({ ...s, memoryBytes: byDevice.get(s.peerId)?.memoryBytes ?? 0, stageMs: byDevice.get(s.peerId)?.stageMs ?? 0 })),
    excluded: p.plan.excluded.map((e) => ({ device: e.device, reason: e.reason })),
    owner: p.owner ? { name: p.owner.name, peerId: p.owner.peerId, why: p.owner.why } : null,
    predicted: { ttftMs: p.plan.cost.ttftMs, tokenLatencyMs: p.plan.cost.tokenLatencyMs, throughputTokPerS: p.plan.cost.throughputTokPerS },
  };
}
