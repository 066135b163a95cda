/**
 * Which waiting work one batched step takes: the scheduling decision of continuous batching, as a pure function.
 *
 * Work waits in arrival order. A step takes the first waiting item of each request (a request's items run in order),
 * all of a one-row item (a decode step), and at most `promptRows` rows of a longer one (a prompt slice, so that a
 * long prompt is spread over several steps between the other requests' tokens), until `batchRows` rows are taken.
 */
export interface WaitingWork {
  /** The request it belongs to. */
  request: string;
  /** Rows it still has to compute. */
  rowsLeft: number;
  /** Rows it had in all (1 = a decode step). */
  rows: number;
}

export interface StepBudget {
  /** Most rows of one prompt in a step. */
  promptRows: number;
  /** Most rows in a step. */
  batchRows: number;
}

export interface StepPart {
  /** Index into the waiting list. */
  index: number;
  rows: number;
}

export function planStep(waiting: readonly WaitingWork[], budget: StepBudget): StepPart[] {
  const parts: StepPart[] = [];
  const seen = new Set<string>();
  let taken = 0;
  for (let i = 0; i < waiting.length && taken < budget.batchRows; i++) {
    const w = waiting[i];
    if (seen.has(w.request)) continue;
    seen.add(w.request);
    if (w.rowsLeft <= 0) continue;
    const rows = Math.min(w.rowsLeft, w.rows > 1 ? budget.promptRows : 1, budget.batchRows - taken);
    parts.push({ index: i, rows });
    taken += rows;
  }
  return parts;
}

/** Rows of a step before any step was timed: a slow device's first prompt slice must not block it for seconds. */
export const FIRST_STEP_ROWS = 4;

/**
 * The budget of the next step: the configured one, shrunk so that the step should take about `targetMs` at the
 * measured milliseconds per row. A step holds the event loop (the forward pass is synchronous): a device that needs
 * seconds for 32 prompt rows of its layers would otherwise miss its heartbeats and be taken for gone, and its
 * streams would stall. `msPerRow` null: nothing timed yet; `targetMs` Infinity: the limits as they are.
 */
export function stepBudget(limits: StepBudget, msPerRow: number | null, targetMs: number): StepBudget {
  if (targetMs === Number.POSITIVE_INFINITY) return limits;
  const rows = msPerRow === null ? FIRST_STEP_ROWS : Math.max(1, Math.floor(targetMs / Math.max(msPerRow, 1e-6)));
  return { promptRows: Math.min(limits.promptRows, rows), batchRows: Math.min(limits.batchRows, Math.max(rows, 1)) };
}
