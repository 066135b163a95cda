import type { Cluster } from './cluster.js';
import { CostModel } from './cost-model.js';
import type { ModelProfile } from './model-profile.js';
import type { Assignment, Exclusion, Objective, Plan, Strategy } from './plan.js';
import type { RequestShape } from './request-shape.js';
import type { StageCosts } from './stage-costs.js';
import { MovedLayers, stageCosts } from './stage-costs.js';
import type { Solution } from './solution.js';
import { MAX_EXACT_DEVICES, solveExact } from './exact-planner.js';
import { objectiveOf, solveFast, solveOrder } from './fast-planner.js';
import { minimizePeriod, occupancyCandidates } from './throughput-search.js';
import { equalSplit, givenSplit, memoryWeightedSplit } from './baselines.js';
import { InvalidPlanError, ModelDoesNotFitError, formatBytes } from './errors.js';

export interface PlanOptions {
  /** Default 'latency'. */
  objective?: Objective;
  /** Default 'optimal': exact up to `maxExactDevices` devices, the fast planner beyond. */
  strategy?: 'optimal' | 'exact' | 'fast' | 'memory-weighted' | 'equal';
  /** Relative cost difference treated as a tie (ties go to the plan moving fewer layers). Default 1e-9. */
  tolerance?: number;
  /** A plan in force: among equally good plans, prefer the one that moves the fewest of its layers. */
  previous?: Plan;
  /** Default 8. */
  maxExactDevices?: number;
}

/** Plans a pipeline: which devices, in what ring order, with how many contiguous layers each. */
export function planPipeline(profile: ModelProfile, cluster: Cluster, request: RequestShape, options: PlanOptions = {}): Plan {
  const objective = options.objective ?? 'latency';
  const strategy = options.strategy ?? 'optimal';
  const cm = new CostModel(profile, cluster, request);
  if (strategy === 'memory-weighted') return buildPlan(cm, objective, strategy, memoryWeightedSplit(cluster, cm.L), 'exo memory-weighted split');
  if (strategy === 'equal') return buildPlan(cm, objective, strategy, equalSplit(cluster, cm.L), 'equal split');
  const tolerance = options.tolerance ?? 1e-9;
  const costs = stageCosts(cm, objective);
  const moved = options.previous ? movedTable(cm, options.previous) : null;
  const useExact = strategy === 'exact' || (strategy === 'optimal' && cm.n <= (options.maxExactDevices ?? MAX_EXACT_DEVICES));
  const sol = useExact ? solveExactObjective(cm, costs, objective, tolerance, moved) : solveFast(cm, costs, objective, tolerance, moved);
  if (!sol) throw doesNotFit(cm);
  const plan = buildPlan(cm, objective, useExact ? 'exact' : 'fast', sol.assignments, '');
  plan.excluded = explainExclusions(cm, costs, objective, sol, tolerance);
  return plan;
}

/** Evaluates a user's split (layers per device, in the listed device order) without planning. */
export function evaluateSplit(profile: ModelProfile, cluster: Cluster, request: RequestShape, layersPerDevice: readonly number[], objective: Objective = 'latency'): Plan {
  const cm = new CostModel(profile, cluster, request);
  if (layersPerDevice.length !== cm.n) {
    throw new InvalidPlanError(`the split lists ${layersPerDevice.length} numbers for ${cm.n} devices (one per device, in the listed order)`);
  }
  if (layersPerDevice.some((x) => !Number.isInteger(x) || x < 0)) throw new InvalidPlanError('split entries must be non-negative integers');
  const total = layersPerDevice.reduce((s, x) => s + x, 0);
  if (total !== cm.L) throw new InvalidPlanError(`the split assigns ${total} layers; the model has ${cm.L}`);
  return buildPlan(cm, objective, 'given', givenSplit(layersPerDevice), 'the given split');
}

/** Exact search over subsets/orders/splits for the objective. */
function solveExactObjective(cm: CostModel, costs: StageCosts, objective: Objective, tolerance: number, moved: MovedLayers | null): Solution | null {
  const all = [...Array(cm.n).keys()];
  const solver = (tau: number, mode: 'cost' | 'moved') => solveExact(costs, all, tau, mode, tolerance, moved);
  if (objective === 'latency') return solver(Infinity, 'cost');
  return minimizePeriod(costs, solver, (upTo) => occupancyCandidates(costs, all, upTo), cm.request.concurrency, tolerance, moved !== null);
}

function movedTable(cm: CostModel, previous: Plan): MovedLayers {
  const index = new Map(cm.cluster.devices.map((d, i) => [d.id, i]));
  const prev = previous.stages
    .filter((s) => index.has(s.device))
    .map((s) => ({ device: index.get(s.device)!, start: s.startLayer, end: s.endLayer }));
  return new MovedLayers(cm.n, cm.L, prev);
}

function buildPlan(cm: CostModel, objective: Objective, strategy: Strategy, a: Assignment[], label: string): Plan {
  const { cost, stages, fitsInMemory } = cm.evaluate(a, objective);
  const used = new Set(a.map((x) => x.device));
  const excluded: Exclusion[] = cm.cluster.devices
    .filter((_, i) => !used.has(i))
    .map((d) => ({ device: d.id, code: 'no-layers' as const, reason: `${label} gives it no layers` }));
  return { strategy, objective, request: cm.request, stages, excluded, cost, fitsInMemory };
}

function describe(objective: Objective, value: number): string {
  return objective === 'latency' ? `${value.toFixed(1)} ms per request` : `${(1000 / value).toFixed(2)} tok/s`;
}

/** Memory of the smallest stage a device could hold (one layer, in the cheapest position). */
function oneLayerBytes(cm: CostModel): number {
  const L = cm.L;
  let m = Math.min(cm.memoryBytes(0, 1), cm.memoryBytes(L - 1, L));
  for (let s = 1; s < L - 1; s++) m = Math.min(m, cm.memoryBytes(s, s + 1));
  return m;
}

/** Why each device outside the plan is left out. */
function explainExclusions(cm: CostModel, costs: StageCosts, objective: Objective, sol: Solution, tolerance: number): Exclusion[] {
  const used = new Set(sol.assignments.map((a) => a.device));
  const out: Exclusion[] = [];
  const bestValue = objectiveOf(cm, costs, objective, sol);
  const order = sol.assignments.map((a) => a.device);
  const minBytes = oneLayerBytes(cm);
  const excludedCount = cm.n - used.size;
  // Trying every insertion is cheap for small plans; large fleets get a per-layer comparison instead.
  const tryInsertions = excludedCount * (order.length + 1) <= 400 && order.length < cm.L;
  const slowest = Math.max(...order.map((d) => costs.busy(d, 1 % cm.L, (1 % cm.L) + 1)));
  for (let d = 0; d < cm.n; d++) {
    if (used.has(d)) continue;
    const dev = cm.cluster.devices[d];
    if (dev.memoryBytes < minBytes) {
      out.push({
        device: dev.id,
        code: 'insufficient-memory',
        reason: `it has ${formatBytes(dev.memoryBytes)}; one layer with its KV cache (${cm.request.contextTokens} tokens × ${cm.request.concurrency}) needs ${formatBytes(minBytes)}`,
      });
      continue;
    }
    if (tryInsertions) {
      let withIt = Infinity;
      for (let p = 0; p <= order.length; p++) {
        const o = [...order.slice(0, p), d, ...order.slice(p)];
        const s = solveOrder(cm, costs, objective, o, tolerance, null);
        if (s) withIt = Math.min(withIt, objectiveOf(cm, costs, objective, s));
      }
      if (withIt > bestValue * (1 + tolerance)) {
        out.push({
          device: dev.id,
          code: 'slows-ring',
          reason: Number.isFinite(withIt)
            ? `with it the best ring is slower: ${describe(objective, withIt)} vs ${describe(objective, bestValue)} without`
            : 'no split that includes it fits in memory',
        });
      } else {
        out.push({ device: dev.id, code: 'not-needed', reason: `the ring is as fast without it (${describe(objective, bestValue)})` });
      }
      continue;
    }
    const mine = costs.busy(d, 1 % cm.L, (1 % cm.L) + 1);
    out.push(
      mine > slowest
        ? { device: dev.id, code: 'slows-ring', reason: `slower per layer (${mine.toFixed(3)} ms) than every selected device (≤ ${slowest.toFixed(3)} ms); adding it would add a hop and slow its layers` }
        : { device: dev.id, code: 'not-needed', reason: `the selected devices already hold the model; another hop would cost more than its layers would save` },
    );
  }
  return out;
}

/** Builds the "does not fit" error with the memory that is missing. */
function doesNotFit(cm: CostModel): ModelDoesNotFitError {
  const L = cm.L;
  const required = cm.memoryBytes(0, L);
  const devices = cm.cluster.devices;
  const available = devices.reduce((s, d) => s + d.memoryBytes, 0);
  const perLayer = L > 2 ? cm.memoryBytes(1, 2) - cm.memoryBytes(1, 1) : cm.memoryBytes(0, 1);
  const middleCap = devices.reduce((s, _, d) => s + (L > 2 ? cm.maxLayersFrom(d, 1) : 0), 0);
  const firstNeed = cm.memoryBytes(0, 1);
  const lastNeed = cm.memoryBytes(L - 1, L);
  const largest = Math.max(...devices.map((d) => d.memoryBytes));
  let missing = Math.max(required - available, (L - middleCap) * perLayer);
  const details: string[] = [];
  if (largest < firstNeed) {
    missing = Math.max(missing, firstNeed - largest);
    details.push(`The first stage (embedding + one layer) needs ${formatBytes(firstNeed)}; the largest device has ${formatBytes(largest)}.`);
  }
  if (largest < lastNeed) {
    missing = Math.max(missing, lastNeed - largest);
    details.push(`The last stage (head + one layer) needs ${formatBytes(lastNeed)}.`);
  }
  if (details.length === 0) details.push(`One layer takes ${formatBytes(perLayer)}; the devices can hold about ${Math.min(middleCap, L)} of ${L} layers.`);
  return new ModelDoesNotFitError(Math.max(1, missing), required, available, details.join(' '));
}
