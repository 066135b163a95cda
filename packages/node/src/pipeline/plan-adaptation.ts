import { decideReplan, decideRestore, moveCostMs, movedLayers, repricePlan, type ModelProfile, type ReplanPolicy, type RequestShape } from '@edge-node/partitioner';
import type { DeviceLoad } from '../cluster/device-load.js';
import type { ClusterMember } from '../cluster/membership.js';
import { clusterOf, type ClusterPlan } from './cluster-plan.js';

/** A re-plan waits at most this long for its stages to load (a throttled node loads slowly): then it re-decides. */
const REPLAN_LOAD_PATIENCE_MS = 4000;

type Decision = ReturnType<typeof decideReplan>;

/** The plan a load-driven change replaced, the loads under it, and the devices whose load caused the change. */
export interface Restorable {
  former: ClusterPlan;
  loads: Map<string, DeviceLoad | null>;
  causes: string[];
}

/** What a load-driven change is weighed with: the plan in force, the devices of now, and what came before. */
export interface AdaptSituation {
  current: ClusterPlan;
  /** The members that have the model, with their loads of now. */
  members: ClusterMember[];
  profile: ModelProfile;
  request: RequestShape;
  /** Rate at which stages load moved layers (MB/s): the cost of a move. */
  loadMBps: number;
  sinceLastChangeMs: number;
  restorable: Restorable | null;
  policy?: ReplanPolicy;
}

/** The plan in force priced with the devices' figures of now, the plan it could become, and the verdict. */
export interface Weighing {
  nowMs: number;
  nowFits: boolean;
  candidate: ClusterPlan;
  decision: Decision;
  /** The candidate is the former plan a load-driven change replaced. */
  restoring: boolean;
  /** How long the candidate's stages may take to load before the change is dropped (Infinity: whatever it takes). */
  patienceMs: number;
}

/**
 * Priced with the devices' figures of now, does `candidate` (the partitioner's best plan) beat the plan in force by
 * enough to pay for moving layers (decideReplan)? If not, is it time to go back to the plan a load-driven change
 * replaced (decideRestore)? Null when a stage's node is gone: membership's re-plan handles that.
 */
export function weighChange(s: AdaptSituation, candidate: ClusterPlan): Weighing | null {
  const now = repricePlan(s.current.plan, s.profile, clusterOf(s.members), s.request);
  if (!now.cost) return null;
  const loads = new Map(s.members.map((m) => [m.peerId, m.load?.slowdown ?? 1]));
  const slowdownOf = (id: string) => loads.get(id) ?? 1;
  const decision = decideReplan(
    {
      currentMs: now.cost.tokenLatencyMs,
      currentFits: now.fitsInMemory,
      candidateMs: candidate.plan.cost.tokenLatencyMs,
      movedLayers: candidate.id === s.current.id ? 0 : Math.max(1, movedLayers(s.current.plan, candidate.plan)),
      moveMs: moveCostMs(s.current.plan, candidate.plan, s.profile, s.loadMBps, slowdownOf),
      sinceLastChangeMs: s.sinceLastChangeMs,
    },
    s.policy,
  );
  const restore = considerRestore(s, now.cost.tokenLatencyMs, decision);
  const chosen = restore.candidate ?? candidate;
  // A stage on a busy device may load far slower than predicted (its slowdown was still rising); a plan that no
  // longer fits must be left whatever the wait.
  const patienceMs = now.fitsInMemory ? Math.max(REPLAN_LOAD_PATIENCE_MS, 3 * moveCostMs(s.current.plan, chosen.plan, s.profile, s.loadMBps, slowdownOf)) : Infinity;
  return { nowMs: now.cost.tokenLatencyMs, nowFits: now.fitsInMemory, candidate: chosen, decision: restore.decision, restoring: restore.candidate !== undefined, patienceMs };
}

/**
 * When no better plan is found: the former plan again, once the devices that caused the change are quiet (within
 * decideRestore's tolerance), or sooner by the way back: once each of them is measured no slower than the devices now
 * covering its layers and the former plan is predicted no slower than the one in force. The way back asks no gain
 * (a new move's 20 % is for leaving a plan that works; this returns to the plan chosen for the quiet fleet), so a
 * node whose neighbours read busy from the same shared machine gets its layers back with the first figure after the
 * lift; while it is still throttled it reads slower than they do and stays out.
 */
function considerRestore(s: AdaptSituation, nowMs: number, decision: Decision): { candidate?: ClusterPlan; decision: Decision } {
  const r = s.restorable;
  if (decision.replan || !r || r.former.id === s.current.id) return { decision };
  const causeCleared = causesCleared(r, s.members);
  const cluster = clusterOf(s.members);
  const back = repricePlan(r.former.plan, s.profile, cluster, s.request);
  const situation = { currentMs: nowMs, formerMs: back.cost?.tokenLatencyMs ?? Infinity, formerFits: back.cost !== null && back.fitsInMemory, sinceLastChangeMs: s.sinceLastChangeMs };
  let restore = decideRestore({ ...situation, causeCleared }, s.policy);
  const wayBack = !causeCleared && causesNoSlowerThanCoverers(r, s.current, new Map(cluster.devices.map((d) => [d.id, d.gflops])));
  if (wayBack) {
    const why = 'the device that caused the last change is no slower now than those covering its layers';
    const w = decideRestore({ ...situation, causeCleared: true, clearedBecause: why }, { ...s.policy, tolerance: 0 });
    restore = w.replan ? w : { replan: false, reason: `${why}; ${w.reason}` };
  }
  // The former plan, re-priced: its figures are those of now.
  if (restore.replan) return { candidate: { ...r.former, plan: { ...r.former.plan, cost: back.cost!, stages: r.former.plan.stages } }, decision: restore };
  if (causeCleared || wayBack) return { decision: { replan: false, reason: `${decision.reason}; ${restore.reason}` } };
  return { decision };
}

/**
 * Each device that caused the change is measured at least as fast (`speed`: the planner's figure, its profile ÷
 * slowdown × calibration) as every device that now holds a layer it held in the former plan.
 */
function causesNoSlowerThanCoverers(r: Restorable, current: ClusterPlan, speed: Map<string, number>): boolean {
  return r.causes.every((id) => {
    const own = speed.get(id);
    if (own === undefined) return false;
    const held = r.former.stages.filter((s) => s.peerId === id);
    const covering = current.stages.filter((s) => s.peerId !== id && held.some((h) => s.startLayer < h.endLayer && h.startLayer < s.endLayer));
    return covering.every((c) => own >= (speed.get(c.peerId) ?? Infinity));
  });
}

/** Every device that caused the change is as quiet as before it (no slower, no smaller memory budget). */
function causesCleared(r: Restorable, members: ClusterMember[]): boolean {
  const byId = new Map(members.map((m) => [m.peerId, m]));
  return r.causes.every((id) => !worseThan(byId.get(id)?.load ?? null, r.loads.get(id) ?? null));
}

/** A device's load is worse than it was: slower, or a smaller memory budget. */
function worseThan(load: DeviceLoad | null, was: DeviceLoad | null): boolean {
  return (load?.slowdown ?? 1) > (was?.slowdown ?? 1) || (load?.memoryBudgetBytes ?? Infinity) < (was?.memoryBudgetBytes ?? Infinity);
}

/**
 * The loads a plan was made for, brought down to each device's quietest since: a device announced busy when the plan
 * was made (a start-up probe on a loaded machine read 4.6×) and quiet a second later must count as quiet, or a
 * throttle after that (2.6×) is no worse than "before", names no cause, and its layers never come back.
 */
export function quietestLoads(before: Map<string, DeviceLoad | null>, members: ClusterMember[]): Map<string, DeviceLoad | null> {
  const out = new Map(before);
  for (const m of members) {
    const was = before.get(m.peerId);
    const now = m.load;
    // Unknown then (null) already counts as quiet with all its memory.
    if (!was || !now) continue;
    const quieter = now.slowdown < was.slowdown;
    const roomier = now.memoryBudgetBytes > was.memoryBudgetBytes;
    if (!quieter && !roomier) continue;
    out.set(m.peerId, {
      ...was,
      ...(quieter ? { slowdown: now.slowdown, since: now.since } : {}),
      ...(roomier ? { memoryBudgetBytes: now.memoryBudgetBytes, memoryReason: now.memoryReason } : {}),
    });
  }
  return out;
}

/** The devices whose load got worse since `before`: what a change they cause is undone for, once they are quiet. */
export function changeCauses(members: ClusterMember[], before: Map<string, DeviceLoad | null>): string[] {
  return members.filter((m) => worseThan(m.load, before.get(m.peerId) ?? null)).map((m) => m.peerId);
}

/**
 * Has every stage load its layers, waiting at most `patienceMs`: true once all have, false past the patience (the
 * loads go on, and `late` sees each stage once its load ends). Rejects if a stage cannot load.
 */
export async function loadWithin<S>(stages: readonly S[], load: (stage: S) => Promise<void>, patienceMs: number, late: (stage: S) => void): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const loading = stages.map((s) => load(s).then(() => s));
  try {
    const loaded = await Promise.race([
      Promise.all(loading).then(() => true),
      ...(Number.isFinite(patienceMs) ? [new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), patienceMs)))] : []),
    ]);
    if (!loaded) for (const l of loading) void l.then(late).catch(() => {});
    return loaded;
  } finally {
    clearTimeout(timer);
  }
}
