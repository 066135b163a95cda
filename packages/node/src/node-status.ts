import type { DeviceLoad } from './cluster/device-load.js';
import type { DeviceProfile } from './cluster/device-profile.js';
import type { LinkStats } from './cluster/link-monitor.js';
import type { ClusterMember, Membership, StageInfo } from './cluster/membership.js';
import type { ClusterPipeline } from './pipeline/cluster-pipeline.js';
import type { CoordinatorLora } from './pipeline/lora-slices.js';
import type { PlanChange } from './pipeline/plan-history.js';
import { planSummary, type PlanSummary } from './pipeline/plan-summary.js';

export interface MemberStatus {
  peerId: string;
  name: string;
  addresses: string[];
  profile: DeviceProfile;
  /** Load as the node announces it: slowdown, other processes' CPU, available memory, memory budget. */
  load: DeviceLoad | null;
  /** Its decode GFLOP/s as the planner sees it now (measured ÷ slowdown ÷ calibration). */
  effectiveGflops: number;
  stageInfo: StageInfo | null;
  /** ms since this node last heard from it (0 for self). */
  lastSeenMsAgo: number;
}

export interface LinkStatus extends LinkStats {
  from: string;
  to: string;
}

/** Snapshot served at GET /v1/cluster and printed by `edge-node status`. */
export interface ClusterStatus {
  self: MemberStatus;
  peers: MemberStatus[];
  /** Every link measured by any member (each member shares its own measurements). */
  links: LinkStatus[];
  /** The plan in force, once the pipeline has one (without the nodes that left). */
  plan: PlanSummary | null;
  /** Why the cluster cannot serve right now (e.g. the memory that is missing), or null. */
  planError: string | null;
  /** The last plan changes this node made as a coordinator, oldest first, with their reasons. */
  planHistory: PlanChange[];
  /** The coordinator's last verdict on its plan (why it was kept, or changed). */
  planDecision: string;
  /** The plan in force priced with the devices' current figures (ms/token), checked every second; null before. */
  planPredictedNowMs: number | null;
  /** The LoRA adapter this node's requests are served with (`--lora`), or null. */
  lora: LoraStatus | null;
}

/** An adapter in force: its file, id (SHA-256 prefix and scale), alpha and user scale, and what it adapts. */
export interface LoraStatus {
  file: string;
  id: string;
  alpha: number;
  scale: number;
  pairs: number;
  ranks: number[];
}

export interface HealthStatus {
  status: 'ok';
  peerId: string;
  name: string;
  addresses: string[];
  /** Connected cluster peers (members), not counting this node. */
  peers: number;
}

/**
 * The plan as views show it: a node that left is gone from it as soon as membership drops it (within the failure
 * timeout) — from its stages, its "left out" list and as its owner — though the plan in force changes only at the
 * next request (or stays, when the nodes left cannot hold the model: then planError says why).
 */
function withoutDeparted(p: PlanSummary, present: ReadonlySet<string>): PlanSummary {
  return {
    ...p,
    stages: p.stages.filter((s) => present.has(s.peerId)),
    excluded: p.excluded.filter((e) => present.has(e.device)),
    owner: p.owner && !present.has(p.owner.peerId) ? null : p.owner,
  };
}

function memberStatus(m: ClusterMember, now: number, self: boolean): MemberStatus {
  return {
    peerId: m.peerId,
    name: m.name,
    addresses: m.addresses,
    profile: m.profile,
    load: m.load,
    effectiveGflops: Math.round((m.profile.gflopsDecode / ((m.load?.slowdown ?? 1) * (m.load?.calibration ?? 1))) * 100) / 100,
    stageInfo: m.stageInfo,
    lastSeenMsAgo: self ? 0 : now - m.lastSeen,
  };
}

/** The cluster as this node sees it now: members, links, and the plan with its history (GET /v1/cluster). */
function loraStatus(l: CoordinatorLora): LoraStatus {
  const ranks = [...new Set([...l.adapter.tensors.values()].map((p) => p.rank))].sort((a, b) => a - b);
  return { file: l.file, id: l.id, alpha: l.adapter.alpha, scale: l.scale, pairs: l.adapter.tensors.size, ranks };
}

export function clusterStatus(membership: Membership, pipeline: ClusterPipeline | null): ClusterStatus {
  const now = Date.now();
  const all = [membership.self(), ...membership.members()];
  return {
    self: memberStatus(all[0], now, true),
    peers: all.slice(1).map((m) => memberStatus(m, now, false)),
    links: all.flatMap((m) => Object.entries(m.links).map(([to, s]) => ({ from: m.peerId, to, ...s }))),
    plan: pipeline?.activePlan ? withoutDeparted(planSummary(pipeline.activePlan), new Set(all.map((m) => m.peerId))) : null,
    planError: pipeline?.planner.planError ?? null,
    planHistory: pipeline?.planner.history.list() ?? [],
    planDecision: pipeline?.planner.lastDecision ?? '',
    lora: pipeline?.lora ? loraStatus(pipeline.lora) : null,
    planPredictedNowMs: pipeline?.planner.predictedNowMs ?? null,
  };
}
