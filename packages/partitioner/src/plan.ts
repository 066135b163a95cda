import type { FullRequestShape } from './request-shape.js';

/** latency: one request's time (TTFT + per-token decode); throughput: tokens/s with `concurrency` requests in flight. */
export type Objective = 'latency' | 'throughput';

/** How a plan was made. `optimal` = exact for small clusters, fast otherwise; `given` = a split from the user. */
export type Strategy = 'optimal' | 'exact' | 'fast' | 'memory-weighted' | 'equal' | 'given';

/** A device and the contiguous layers [startLayer, endLayer) it holds, with the memory they take there. */
export interface StagePlacement {
  device: string;
  startLayer: number;
  /** Exclusive. */
  endLayer: number;
  memoryBytes: number;
  memoryAvailableBytes: number;
}

/** One pipeline stage: a device and the contiguous layers [startLayer, endLayer) it runs. */
export interface Stage extends StagePlacement {
  /** Weights + KV cache (reserved context × concurrency) + activations + embedding/head if first/last. */
  memoryBytes: number;
  /** Roofline time of the stage's layers for one decode token, with the device's fixed cost of a step. */
  computeMs: number;
  /** The same for the whole prompt, in slices, each with its fixed cost (what time to first token adds up). */
  promptMs: number;
  /** One decode token's hop to the next stage (the last stage's hop is the return to the first). */
  hopMs: number;
  /** computeMs + hopMs, and on the last stage the first device's fixed cost of coordinating the token. */
  stageMs: number;
}

export type ExclusionCode = 'insufficient-memory' | 'slows-ring' | 'not-needed' | 'no-layers';

export interface Exclusion {
  device: string;
  code: ExclusionCode;
  reason: string;
}

/** The cost model's figures for a plan. */
export interface PlanCost {
  /** What the objective minimises: request ms (latency) or pipeline period ms per token (throughput). */
  objectiveValue: number;
  ttftMs: number;
  /** One request alone: time between generated tokens (at the mean decode position). */
  tokenLatencyMs: number;
  /** Steady-state decode tokens/s with `concurrency` requests in flight. */
  throughputTokPerS: number;
  /** Slowest stage's busy time per token (compute + transfer). */
  bottleneckMs: number;
}

export interface Plan {
  strategy: Strategy;
  objective: Objective;
  request: FullRequestShape;
  stages: Stage[];
  excluded: Exclusion[];
  cost: PlanCost;
  /** False when a stage needs more memory than its device has (possible for baselines and given splits). */
  fitsInMemory: boolean;
}

/** Stage boundaries in device-index form, used inside planners. */
export interface Assignment {
  device: number;
  start: number;
  end: number;
}
