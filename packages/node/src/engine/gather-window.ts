/**
 * When the next step of a device that holds the whole model may start. Its requests come back right after their step:
 * the token goes to the coordinator, is streamed, and the next frame comes back, a millisecond or two later. A step
 * that starts the moment the first of them is back computes it alone and the rest in the step after; the batch splits
 * into groups that then alternate (while one computes, the event loop is blocked and the other cannot come back in
 * time), and every weight is read once per group per token — measured on a 300M Q4_K_M node: 2.4 rows per step with
 * 4 requests in flight, 4.2 with 8. So such a device waits, for at most a small share of a step, until every request
 * of its last step is queued again (or has ended).
 *
 * A stage of a longer ring does not wait: its requests come back after the other stages' compute, and its steps on
 * other micro-batches meanwhile are what keeps the ring full.
 */

/** The wait is at most this share of the last step's time… */
export const GATHER_SHARE = 0.1;
/** …and never more than this. */
export const GATHER_MAX_MS = 20;

export interface GatherState {
  now: number;
  /** When the last step ended, and how long it took. */
  lastStepEnd: number;
  lastStepMs: number;
  /** Requests whose work the last step finished on a shard holding the whole model: they come back at once. */
  expected: ReadonlySet<string>;
  /** Requests with work queued now. */
  queued: ReadonlySet<string>;
}

/** Milliseconds to wait before the next step (0: start now). Pure. */
export function gatherWaitMs(s: GatherState): number {
  const deadline = s.lastStepEnd + Math.min(GATHER_MAX_MS, GATHER_SHARE * s.lastStepMs);
  if (!(s.now < deadline)) return 0;
  for (const request of s.expected) if (!s.queued.has(request)) return deadline - s.now;
  return 0;
}
