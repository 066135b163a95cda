import {
  evaluateSplit,
  modelProfile,
  planPipeline,
  type Cluster,
  type Device,
  type Link,
  type ModelShape,
  type Plan,
  type RequestShape,
} from '@edge-node/partitioner';
import type { ClusterMember } from '../cluster/membership.js';
import { kvBytesPerValue, type KvCacheType } from '../engine/kv-cache.js';
import type { ModelConfig } from '../model/model-config.js';
import { hopLatencyMs } from './hop-latency.js';
import type { Route } from './route.js';
import { planOwner, ringOrder, type PlanOwner } from './plan-owner.js';

/** The cluster cannot serve right now (not enough nodes for --split, nobody has the model, …). */
export class ClusterNotReadyError extends Error {
  override name = 'ClusterNotReadyError';
}

export interface ClusterPlanInput {
  /** This node and the other members, as membership knows them. */
  members: ClusterMember[];
  config: ModelConfig;
  /** Stored bytes per weight of the model file (default 4: float32). */
  bytesPerWeight?: number;
  /** This node's KV cache type; the plan counts the widest of it and the members' (default f32, the most memory). */
  kvCache?: KvCacheType;
  /** Only members whose stageInfo.model equals this take part. */
  modelFingerprint: string;
  /** The id of the LoRA adapter the plan's stages apply, carried by its route. */
  lora?: string;
  /**
   * Layers per node, for nodes in name order (then peer id); overrides the partitioner. Default: the split the plan
   * owner announces (planOwner), if any.
   */
  split?: number[];
  /** The coordinator's peer id: a split it announces itself wins over the others'. */
  self?: string;
  /** What the plan reserves memory for. */
  request: RequestShape;
  previous?: Plan;
}

export interface ClusterPlan {
  /** Changes whenever the stages change. */
  id: string;
  route: Route;
  /** The partitioner's plan with its predictions (device ids are peer ids). */
  plan: Plan;
  stages: { peerId: string; name: string; startLayer: number; endLayer: number }[];
  /** Whose split (or rule) made this plan, the same on every node. */
  owner: PlanOwner | null;
}

/**
 * The partitioner's view of a model: its sizes, the bytes per weight its file stores (the engine keeps them) and the
 * bytes per value of the KV cache type (default f32: the most memory).
 */
export function modelShapeOf(c: ModelConfig, bytesPerWeight = 4, kvCache: KvCacheType = 'f32'): ModelShape {
  return {
    name: c.name,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    tiedEmbeddings: c.tiedEmbeddings,
    attentionBias: c.attentionBias,
    bytesPerWeight,
    bytesPerKvValue: kvBytesPerValue(kvCache),
  };
}

/**
 * Identifies a model across nodes: two nodes can share a pipeline only if their fingerprints match. It is made of
 * the architecture and every size that shapes a tensor — not the name, which differs between a GGUF file, a local
 * folder and a hub cache folder of the same model. (Two fine-tunes of one base model look alike to it.)
 */
export function modelFingerprint(c: ModelConfig): string {
  const rope = c.ropeScaling ? `|rope:${c.ropeScaling.type}x${c.ropeScaling.factor}` : '';
  return `${c.architecture}|L${c.numLayers}|H${c.hiddenSize}|F${c.intermediateSize}|A${c.numHeads}/${c.numKvHeads}x${c.headDim}|V${c.vocabSize}|theta${c.ropeTheta}${rope}`;
}

/**
 * The devices and links the partitioner sees. A device's measured speed is divided by the slowdown its node
 * announces (its owner is using it) and by its calibrations (how far the profile's prediction was off for its decode
 * steps and for its prompts when quiet), and its memory is what the node offers now.
 */
export function clusterOf(members: ClusterMember[]): Cluster {
  // A node that has not run a stage (or a prompt) yet is assumed to be off by as much as the others (same engine,
  // similar devices). Before any node has computed a prompt, prompts take the decode calibration, as they did before
  // there was a prompt calibration.
  const typical = medianOf(members.map((m) => m.load?.calibration)) ?? 1;
  const typicalPrompt = medianOf(members.map((m) => m.load?.promptCalibration));
  const devices: Device[] = members.map((m) => {
    const busy = Math.max(1, m.load?.slowdown ?? 1);
    const calibration = m.load?.calibration ?? typical;
    const slow = busy * calibration;
    const slowPrompt = busy * (m.load?.promptCalibration ?? typicalPrompt ?? calibration);
    const memory = Math.min(m.profile.memoryBytes, m.load?.memoryBudgetBytes ?? Infinity);
    return {
      id: m.peerId,
      gflops: m.profile.gflopsDecode / slow,
      gflopsPrefill: m.profile.gflopsPrefill / slowPrompt,
      memBandwidthGBps: m.profile.memBandwidthGBps / slow,
      // Fixed costs are work on the device too: its owner's load slows them (the frame's and the token's are outside
      // the runs a calibration is taken on).
      ...(m.profile.stepOverheadMs !== undefined ? { stepOverheadMs: m.profile.stepOverheadMs * busy } : {}),
      ...(m.profile.tokenOverheadMs !== undefined ? { tokenOverheadMs: m.profile.tokenOverheadMs * busy } : {}),
      ...(m.profile.wakeMs !== undefined ? { wakeMs: m.profile.wakeMs * busy } : {}),
      // A pass's cost after idling is in the runs a calibration is the ratio of (stage-run-expectation.ts), so it is
      // scaled as the kernels are: scaled by the load alone, a stage read 0.5–0.7 of its measured compute on
      // stories260K's rings (calibrated 2–3×, a pass 0.03–0.1 ms of 0.2).
      ...(m.profile.passOverheadMs !== undefined ? { passOverheadMs: m.profile.passOverheadMs * slow } : {}),
      // The partitioner wants positive figures; a node offering nothing is left out as "insufficient memory".
      memoryBytes: Math.max(1, memory),
    };
  });
  // A hop is priced at half its link's ping less the receiver's wake-up, which its fixed costs count (hop-latency.ts),
  // plus what the coordinators measured of served hops beyond the model's figures (a bigger frame, a receiver woken
  // after a few ms; served-hops.ts), the median of theirs.
  const hopExcess = medianOf(members.map((m) => m.load?.hopExcessMs), { positive: false }) ?? 0;
  const byId = new Map(members.map((m) => [m.peerId, m]));
  const links: Link[] = [];
  for (const m of members) {
    for (const [to, s] of Object.entries(m.links)) {
      const receiver = byId.get(to);
      if (receiver && to !== m.peerId) links.push({ from: m.peerId, to, latencyMs: Math.max(0, hopLatencyMs(s.rttMs, receiver.profile) + hopExcess), bandwidthMBps: s.bandwidthMBps });
    }
  }
  return { devices, links, defaultLink: { latencyMs: 1, bandwidthMBps: 100 } };
}

/** The median of the figures given (the upper one of an even count; positive ones only unless told), or null when there are none. */
function medianOf(xs: readonly (number | null | undefined)[], o: { positive: boolean } = { positive: true }): number | null {
  const known = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x) && (!o.positive || x > 0)).sort((x, y) => x - y);
  return known.length > 0 ? known[Math.floor(known.length / 2)] : null;
}

/**
 * The KV cache type a plan counts. Each node keeps its own (`--kv-cache`, in its profile) and the partitioner counts
 * one for every stage, so: the most bytes per value among this node's and the members' types, with which a plan that
 * fits fits on each node. A member that does not say is left out; f32 when none says.
 */
export function widestKvCache(self: KvCacheType | undefined, members: readonly ClusterMember[]): KvCacheType {
  const types = [self, ...members.map((m) => m.profile.kvCache)].filter((t): t is KvCacheType => t !== undefined);
  return types.reduce<KvCacheType | undefined>((a, b) => (a === undefined || kvBytesPerValue(b) > kvBytesPerValue(a) ? b : a), undefined) ?? 'f32';
}

export function computeClusterPlan(input: ClusterPlanInput): ClusterPlan {
  const { config } = input;
  const members = input.members.filter((m) => m.stageInfo?.model === input.modelFingerprint).sort(ringOrder);
  if (members.length === 0) throw new ClusterNotReadyError('no node of the cluster has this model loaded');
  const profile = modelProfile(modelShapeOf(config, input.bytesPerWeight, widestKvCache(input.kvCache, members)));
  let owner = planOwner(members, input.self);
  const split = input.split ?? owner?.split ?? undefined;
  if (owner?.split && members.length < owner.split.length) {
    // The split waits for its nodes; meanwhile the coordinator plans, and the views say so.
    const self = members.find((m) => m.peerId === input.self) ?? owner;
    owner = { peerId: self.peerId, name: self.name, split: null, why: `${owner.why}, for ${owner.split.length} nodes; ${members.length} have the model, so ${self.name} planned with the partitioner` };
  }
  let plan: Plan;
  // A forced split applies while it has its nodes; with fewer (one left), the partitioner plans over those that remain.
  if (split && members.length >= split.length) {
    plan = evaluateSplit(profile, clusterOf(members.slice(0, split.length)), input.request, split);
  } else {
    plan = planPipeline(profile, clusterOf(members), input.request, { objective: 'latency', ...(input.previous ? { previous: input.previous } : {}) });
  }
  const byId = new Map(members.map((m) => [m.peerId, m]));
  const stages = plan.stages
    .filter((s) => s.endLayer > s.startLayer)
    .map((s) => ({ peerId: s.device, name: byId.get(s.device)?.name ?? s.device, startLayer: s.startLayer, endLayer: s.endLayer }));
  const id = stages.map((s) => `${s.peerId.slice(-6)}:${s.startLayer}-${s.endLayer}`).join(',');
  return {
    id,
    plan,
    stages,
    owner,
    route: { planId: id, peers: stages.map((s) => s.peerId), ranges: stages.map((s) => [s.startLayer, s.endLayer]), model: input.modelFingerprint, ...(input.lora !== undefined ? { lora: input.lora } : {}) },
  };
}
