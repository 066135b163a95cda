import { evaluateTrainingSplit, planTraining, type Cluster, type TrainingShape } from '@edge-node/partitioner';
import type { ClusterMember } from '../cluster/membership.js';
import type { ModelConfig } from '../model/model-config.js';
import { clusterOf, modelShapeOf } from './cluster-plan.js';
import { planOwner, ringOrder } from './plan-owner.js';
import type { Route } from './route.js';

export interface TrainingSplitInput {
  /** This node and the other members, as membership knows them (without the ones a job lost). */
  members: ClusterMember[];
  config: ModelConfig;
  /** Stored bytes per weight of the model file. */
  bytesPerWeight: number;
  /** Only members serving this model take part. */
  fingerprint: string;
  /** The job's owner: this node. */
  self: string;
  job: TrainingShape;
  /** The serving plan's route, to say what it would have cost the job. */
  serving: Route | null;
}

/** The split the partitioner chose for a job, and why, for its first line. */
export interface TrainingSplitChoice {
  stages: { peerId: string; name: string; startLayer: number; endLayer: number }[];
  /** Predicted ms of a step. */
  stepMs: number;
  why: string;
}

/**
 * The training plan over the members serving the model, from the owner (this node): their profiles and loads as
 * clusterOf gives them, each offering what it reports available now (a job reads its layers again beside the serving
 * copy). Null when a split was given by hand (this node's or the plan owner's --split, with its nodes present) or
 * this node does not serve the model: the job then keeps the serving route. Throws TrainingDoesNotFitError.
 */
export function trainingSplit(input: TrainingSplitInput): TrainingSplitChoice | null {
  const members = servingMembers(input);
  const given = planOwner(members, input.self)?.split;
  if ((given && members.length >= given.length) || !members.some((m) => m.peerId === input.self)) return null;
  const { cluster, idOf } = trainingCluster(members);
  const peerOf = new Map(members.map((m) => [idOf.get(m.peerId)!, m.peerId]));
  const shape = modelShapeOf(input.config, input.bytesPerWeight);
  const plan = planTraining(shape, cluster, input.job, idOf.get(input.self)!);
  const nameOf = new Map(members.map((m) => [m.peerId, m.name]));
  const stages = plan.stages.map((s) => {
    const peerId = peerOf.get(s.device)!;
    return { peerId, name: nameOf.get(peerId)!, startLayer: s.startLayer, endLayer: s.endLayer };
  });
  const serving = input.serving ? servingStepMs(input, cluster, { ...input.serving, peers: input.serving.peers.map((p) => idOf.get(p) ?? p) }, idOf.get(input.self)!) : null;
  const describe = (ss: readonly { name: string; startLayer: number; endLayer: number }[]) => ss.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`).join(' → ');
  const servingSays =
    serving === null ? '' : `; the serving split ${describe(input.serving!.peers.map((p, i) => ({ name: nameOf.get(p) ?? p, startLayer: input.serving!.ranges[i][0], endLayer: input.serving!.ranges[i][1] })))} would take ${serving.toFixed(0)} ms`;
  return {
    stages,
    stepMs: plan.stepMs,
    why: `training plan ${describe(stages)} (partitioner, ${plan.strategy}, over ${members.length} node${members.length === 1 ? '' : 's'}): predicted ${plan.stepMs.toFixed(0)} ms per step of ${plan.job.microBatches} sequence${plan.job.microBatches === 1 ? '' : 's'}${servingSays}`,
  };
}

/**
 * The training plan's price of a job on a given route (a split given by hand: --split), over the same cluster figures
 * as trainingSplit, so that such a job's predicted step can be set beside its measured one. Null when a node of the
 * route is not a member serving the model.
 */
export function trainingRouteStepMs(input: TrainingSplitInput, route: Route): number | null {
  const members = servingMembers(input);
  if (!members.some((m) => m.peerId === input.self)) return null;
  const { cluster, idOf } = trainingCluster(members);
  return servingStepMs(input, cluster, { ...route, peers: route.peers.map((p) => idOf.get(p) ?? p) }, idOf.get(input.self)!);
}

function servingMembers(input: TrainingSplitInput): ClusterMember[] {
  return input.members.filter((m) => m.stageInfo?.model === input.fingerprint).sort(ringOrder);
}

/**
 * The members as the partitioner's devices, each offering the memory it reports available now, slowed by its load but
 * not calibrated; ids by name when names are unique.
 */
function trainingCluster(members: readonly ClusterMember[]): { cluster: Cluster; idOf: Map<string, string> } {
  // Devices go by their names when those are unique, so that a refusal names the nodes as the user knows them.
  const byName = new Set(members.map((m) => m.name)).size === members.length;
  const idOf = new Map(members.map((m) => [m.peerId, byName ? m.name : m.peerId]));
  // Rates as profiled, divided by the load only: the training cost model prices the runtime's fixed work apart, against
  // the profiles' own rates, where a serving calibration is mostly the serving model's miss on a small model's fixed
  // costs (12–34× on stories260K): it would count them twice.
  const base = clusterOf(members.map((m) => (m.load ? { ...m, load: { ...m.load, calibration: null, promptCalibration: null } } : m)));
  const cluster: Cluster = {
    ...base,
    devices: base.devices.map((d, i) => ({ ...d, id: idOf.get(d.id)!, memoryBytes: Math.max(1, Math.min(d.memoryBytes, members[i].load?.availableMemoryBytes ?? Infinity)) })),
    links: base.links.map((l) => ({ ...l, from: idOf.get(l.from)!, to: idOf.get(l.to)! })),
  };
  return { cluster, idOf };
}

/** What the serving route would take per step of this job (its nodes in route order, the owner after them if not in it). */
function servingStepMs(input: TrainingSplitInput, cluster: Cluster, route: Route, self: string): number | null {
  const byId = new Map(cluster.devices.map((d) => [d.id, d]));
  const ids = route.peers.includes(self) ? route.peers : [...route.peers, self];
  if (ids.some((id) => !byId.has(id))) return null;
  const ordered: Cluster = { ...cluster, devices: ids.map((id) => byId.get(id)!) };
  const layers = ids.map((_, i) => (i < route.ranges.length ? route.ranges[i][1] - route.ranges[i][0] : 0));
  return evaluateTrainingSplit(modelShapeOf(input.config, input.bytesPerWeight), ordered, input.job, self, layers).stepMs;
}
