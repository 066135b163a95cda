import type { Cluster } from './cluster.js';
import type { ModelShape } from './model-shape.js';
import type { Assignment, StagePlacement } from './plan.js';
import type { Solution } from './solution.js';
import type { TrainingShape } from './training-shape.js';
import { TrainingCostModel } from './training-cost-model.js';
import { MAX_EXACT_DEVICES, solveExact } from './exact-planner.js';
import { solveFast } from './fast-planner.js';
import { minimizePeriod, occupancyCandidates } from './throughput-search.js';
import { InvalidPlanError, TrainingDoesNotFitError, formatBytes } from './errors.js';

/** A stage of a training job: where it is as an inference stage is, but its times are of a micro-batch's forward and backward. */
export interface TrainingStagePlan extends StagePlacement {
  /** The job's memory on this device (its range, and the owner's ends on the first stage). */
  memoryBytes: number;
  /** One micro-batch's forward and backward through the stage (with the ends on the owner's). */
  computeMs: number;
  /** The owner's relays of one micro-batch's forward and backward to this stage and back (0 on the owner's own stage). */
  hopMs: number;
}

export interface TrainingPlan {
  strategy: 'exact' | 'fast' | 'given';
  job: TrainingShape;
  /** In ring order; the first is the owner's. */
  stages: TrainingStagePlan[];
  /**
   * Predicted ms of one step: one micro-batch round the ring, then one more per remaining micro-batch at the period
   * (the slowest stage, or the ring over the micro-batches in flight: 1F1B), then the gradients' norm and AdamW's step
   * (stepFixedMs).
   */
  stepMs: number;
  /** One micro-batch's forward and backward through every stage and relay. */
  ringMs: number;
  /** Once per step: the gradients' norm round and AdamW's step on every stage. */
  stepFixedMs: number;
  /** The slowest stage's busy time per micro-batch. */
  bottleneckMs: number;
  fitsInMemory: boolean;
}

export interface TrainingPlanOptions {
  /** Default: exact up to maxExactDevices devices, the fast planner beyond. */
  strategy?: 'optimal' | 'exact' | 'fast';
  maxExactDevices?: number;
  tolerance?: number;
}

function ownerIndex(cluster: Cluster, owner: string): number {
  const i = cluster.devices.findIndex((d) => d.id === owner);
  if (i < 0) throw new InvalidPlanError(`the job's owner "${owner}" is not a device of the cluster`);
  return i;
}

/**
 * Plans a training job: which devices, in what ring order (from the owner), with how many layers each, minimising a
 * step's time — the throughput objective's machinery (the period max(slowest stage, ring / micro-batches)) over the
 * training costs, by the exact planner on small clusters and the fast one on many devices.
 */
export function planTraining(shape: ModelShape, cluster: Cluster, job: TrainingShape, owner: string, options: TrainingPlanOptions = {}): TrainingPlan {
  const tm = new TrainingCostModel(shape, cluster, job, ownerIndex(cluster, owner));
  const costs = tm.stageCosts();
  const tolerance = options.tolerance ?? 1e-9;
  const strategy = options.strategy ?? 'optimal';
  const useExact = strategy === 'exact' || (strategy === 'optimal' && tm.n <= (options.maxExactDevices ?? MAX_EXACT_DEVICES));
  let sol: Solution | null;
  if (useExact) {
    const all = [...Array(tm.n).keys()];
    const solver = (tau: number, mode: 'cost' | 'moved') => solveExact(costs, all, tau, mode, tolerance, null);
    sol = minimizePeriod(costs, solver, (upTo) => occupancyCandidates(costs, all, upTo), tm.request.concurrency, tolerance, false);
  } else {
    sol = solveFast(tm, costs, 'throughput', tolerance, null);
  }
  if (!sol) throw doesNotFit(tm);
  return trainingPlanOf(shape, cluster, job, tm.owner, sol.assignments, useExact ? 'exact' : 'fast');
}

/**
 * Prices a given split for training: layers per device in the listed order, the owner first (it is put first when
 * it is listed elsewhere; a device with 0 layers is left out). Does not check memory beyond saying whether it fits.
 */
export function evaluateTrainingSplit(shape: ModelShape, cluster: Cluster, job: TrainingShape, owner: string, layersPerDevice: readonly number[]): TrainingPlan {
  const o = ownerIndex(cluster, owner);
  const tm = new TrainingCostModel(shape, cluster, job, o);
  if (layersPerDevice.length !== tm.n) throw new InvalidPlanError(`the split lists ${layersPerDevice.length} numbers for ${tm.n} devices`);
  const total = layersPerDevice.reduce((s, x) => s + x, 0);
  if (layersPerDevice.some((x) => !Number.isInteger(x) || x < 0) || total !== tm.L) throw new InvalidPlanError(`the split must give the model's ${tm.L} layers as non-negative integers`);
  const a: Assignment[] = [];
  let at = 0;
  layersPerDevice.forEach((x, d) => {
    if (x > 0) a.push({ device: d, start: at, end: at + x });
    at += x;
  });
  return trainingPlanOf(shape, cluster, job, o, a, 'given');
}

/**
 * A plan's figures, priced with its own number of stages in flight (the planners search with the most the cluster
 * allows). The owner's busy time per micro-batch includes its turn for each relayed reply.
 */
function trainingPlanOf(shape: ModelShape, cluster: Cluster, job: TrainingShape, owner: number, a: readonly Assignment[], strategy: TrainingPlan['strategy']): TrainingPlan {
  const ownerHolds = a.some((x) => x.device === owner);
  const tm = new TrainingCostModel(shape, cluster, job, owner, a.length);
  const ownerTurns = (a.length - (ownerHolds ? 1 : 0)) * 2 * (cluster.devices[owner].tokenOverheadMs ?? 0);
  let ring = 0;
  let bottleneck = 0;
  let fitsInMemory = true;
  // The owner pays the ends whether or not it holds the first layers (a given split may put it elsewhere or leave it out).
  const ownerStage = a.findIndex((x) => x.device === tm.owner);
  const stages: TrainingStagePlan[] = a.map((x, i) => {
    const next = a[(i + 1) % a.length].device;
    const computeMs = tm.layersMs(x.device, x.start, x.end) + (i === ownerStage ? tm.endsMs(x.device) : 0);
    const hopMs = tm.relayMs(x.device);
    const dev = tm.cluster.devices[x.device];
    const m = tm.memory(x.start, x.end);
    const memoryBytes = m.total - m.ends + (i === ownerStage ? tm.memory(0, 0).ends : 0);
    if (memoryBytes > dev.memoryBytes) fitsInMemory = false;
    ring += computeMs + hopMs;
    bottleneck = Math.max(bottleneck, computeMs + tm.transferMs(x.device, next) + (i === ownerStage ? ownerTurns : 0));
    return { device: dev.id, startLayer: x.start, endLayer: x.end, memoryBytes, memoryAvailableBytes: dev.memoryBytes, computeMs, hopMs };
  });
  if (ownerStage < 0) {
    const ends = tm.endsMs(tm.owner);
    ring += ends;
    bottleneck = Math.max(bottleneck, ends + ownerTurns);
    if (tm.memory(0, 0).ends > tm.cluster.devices[tm.owner].memoryBytes) fitsInMemory = false;
  }
  const stepFixedMs = tm.stepFixedMs(
    a.map((x) => x.device),
    a.map((x) => x.end - x.start),
  );
  // After the first micro-batch's round, one more per period: the slowest stage's busy time, or the ring over the
  // micro-batches in flight (one per stage) when the relays' latencies leave the stages waiting.
  const period = Math.max(bottleneck, ring / Math.min(a.length, tm.job.microBatches));
  const stepMs = ring + (tm.job.microBatches - 1) * period + stepFixedMs;
  return { strategy, job: tm.job, stages, stepMs, ringMs: ring, bottleneckMs: bottleneck, stepFixedMs, fitsInMemory };
}

/** Names what is missing: the owner's first stage, else the layers the devices cannot hold. */
function doesNotFit(tm: TrainingCostModel): TrainingDoesNotFitError {
  const devices = tm.cluster.devices;
  const owner = devices[tm.owner];
  const first = tm.memoryBytes(0, 1);
  if (first > owner.memoryBytes) {
    return new TrainingDoesNotFitError(
      first - owner.memoryBytes,
      owner.id,
      `the owner ${owner.id} holds the embeddings, head and loss with the first layer: ${formatBytes(first)}, but has ${formatBytes(owner.memoryBytes)} (${formatBytes(first - owner.memoryBytes)} short)`,
    );
  }
  const L = tm.L;
  const s = L > 1 ? 1 : 0;
  const perLayer = tm.memoryBytes(s, s + 1);
  let held = tm.maxLayersFrom(tm.owner, 0);
  const parts = [`${owner.id} ${held}`];
  devices.forEach((d, i) => {
    if (i === tm.owner) return;
    const k = Math.min(L, tm.maxLayersFrom(i, s));
    held += k;
    parts.push(`${d.id} ${k}`);
  });
  const short = Math.max(1, L - held);
  return new TrainingDoesNotFitError(
    short * perLayer,
    null,
    `the devices can hold about ${Math.min(held, L)} of ${L} layers for training (${parts.join(', ')}); one layer takes ${formatBytes(perLayer)} (its weights again, their transposes, the adapter and optimiser, activations)`,
  );
}
