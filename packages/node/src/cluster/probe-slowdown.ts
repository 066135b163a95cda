/** One run of the idle probe: when it ended (ms since epoch) and its wall time (ms). */
export interface ProbeRun {
  at: number;
  ms: number;
}

/** How far back the probe's runs count (a few runs: the probe runs about once a second while idle). */
export const PROBE_WINDOW_MS = 4000;

/**
 * The device's slowdown as its idle probe sees it: the second-fastest run of the last `windowMs` ÷ the fastest run
 * ever (`bestMs`, the quiet figure taken at start and bettered by any faster run since). A fast run, not an average:
 * other processes on a shared machine only ever add wall time to a run, so averaging read a quiet device 2-3× slow
 * for tens of seconds; a CPU quota or starvation holds back every run, so the figure stays high while it lasts and
 * falls with the second run after it is lifted. The second-fastest, not the fastest: a node starved by busy
 * processes had one lucky run now and then (2.7× where the others read 5-12×) and was given layers back for it.
 * Null with fewer than two runs in the window (no figure then). Pure.
 */
export function probeSlowdown(runs: readonly ProbeRun[], bestMs: number, now: number, windowMs = PROBE_WINDOW_MS): number | null {
  if (!(bestMs > 0) || !Number.isFinite(bestMs)) return null;
  const times = runs
    .filter((r) => r.at <= now && now - r.at <= windowMs && r.ms > 0)
    .map((r) => r.ms)
    .sort((x, y) => x - y);
  if (times.length < 2) return null;
  return Math.max(1, times[1] / bestMs);
}

/** The runs still within `windowMs` of `now` (what probeSlowdown reads): the list stays a few runs long. */
export function recentRuns(runs: readonly ProbeRun[], now: number, windowMs = PROBE_WINDOW_MS): ProbeRun[] {
  return runs.filter((r) => now - r.at <= windowMs);
}
