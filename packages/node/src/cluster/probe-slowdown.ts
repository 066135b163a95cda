/** One run of the idle probe: when it ended (ms since epoch) and its wall time (ms). */
export interface ProbeRun {
  at: number;
  ms: number;
}

/** How far back the fastest probe run counts (a few runs: the probe runs about once a second while idle). */
export const PROBE_WINDOW_MS = 4000;

/** Runs within the window before it gives a figure: one run held back by a garbage collection is not a busy device. */
export const PROBE_MIN_RUNS = 2;

/**
 * The device's slowdown as its idle probe sees it: the fastest run of the last `windowMs` ÷ the fastest run ever
 * (`bestMs`, the quiet figure taken at start and bettered by any faster run since). The fastest, not an average:
 * other processes on a shared machine only ever add wall time to a run, so averaging read a quiet device 2-3× slow
 * for tens of seconds; a CPU quota or starvation holds back every run, so the figure stays high while it lasts and
 * falls with the first run after it is lifted. Null with fewer than `minRuns` runs in the window (no figure then).
 * Pure.
 */
export function probeSlowdown(runs: readonly ProbeRun[], bestMs: number, now: number, windowMs = PROBE_WINDOW_MS, minRuns = PROBE_MIN_RUNS): number | null {
  if (!(bestMs > 0) || !Number.isFinite(bestMs)) return null;
  let fastest = Infinity;
  let n = 0;
  for (const r of runs) {
    if (r.at > now || now - r.at > windowMs || !(r.ms > 0)) continue;
    fastest = Math.min(fastest, r.ms);
    n++;
  }
  if (n < minRuns) return null;
  return Math.max(1, fastest / bestMs);
}

/** The runs still within `windowMs` of `now` (what probeSlowdown reads): the list stays a few runs long. */
export function recentRuns(runs: readonly ProbeRun[], now: number, windowMs = PROBE_WINDOW_MS): ProbeRun[] {
  return runs.filter((r) => now - r.at <= windowMs);
}
