import type { Cluster } from './cluster.js';

/**
 * What the fast planner reads of a cost model besides its stage costs: sizes, the cluster, concurrency (requests or
 * micro-batches in flight) and memory. The serving CostModel and the TrainingCostModel both are one.
 */
export interface PlanningModel {
  readonly L: number;
  readonly n: number;
  readonly cluster: Cluster;
  readonly request: { readonly concurrency: number };
  fits(d: number, s: number, e: number): boolean;
  maxLayersFrom(d: number, s: number): number;
}
