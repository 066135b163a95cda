import type { Assignment } from './plan.js';

/** A plan found by a stage dynamic program: its additive cost and how many layers it moves vs a previous plan. */
export interface Solution {
  assignments: Assignment[];
  cost: number;
  moved: number;
}

/**
 * 'cost': minimise the additive cost, ties (within tolerance) broken by fewer moved layers.
 * 'moved': minimise moved layers, ties broken by cost (used once the objective value is already fixed).
 */
export type SolveMode = 'cost' | 'moved';

/** Solves for the best plan whose every stage's occupancy stays ≤ tau (Infinity: unbounded). */
export type Solver = (tau: number, mode: SolveMode) => Solution | null;
