/** Weight of the newest pass in the running milliseconds of passes of its size. */
const COST_WEIGHT = 0.2;
/**
 * A size's own mean counts as at most this many passes against the line through all sizes, worth `LINE_WEIGHT`: a
 * size timed once under a burst of load (a probe) is pulled back towards the line, one timed often is read as is.
 */
const SIZE_WEIGHT_CAP = 6;
const LINE_WEIGHT = 2;
/** Before two pass sizes were timed: an extra row at a tenth of a walk (a ring's hops dominate small passes). */
const PRIOR_ROW_COST = 0.1;

/**
 * The measured cost of a pass through the pipeline as a function of its rows (1: a plain walk; 1 + k: verifying k
 * drafts): a running mean of milliseconds per pass size, shared by a node's requests. A size not timed yet is read
 * off the least-squares line through the sizes that were; one timed rarely, partly.
 */
export class PassCost {
  private readonly ms = new Map<number, number>();
  private readonly count = new Map<number, number>();

  record(rows: number, ms: number): void {
    if (!(ms >= 0) || rows < 1) return;
    const prev = this.ms.get(rows);
    this.ms.set(rows, prev === undefined ? ms : (1 - COST_WEIGHT) * prev + COST_WEIGHT * ms);
    this.count.set(rows, (this.count.get(rows) ?? 0) + 1);
  }

  /** Whether a pass of `rows` rows was timed. */
  timed(rows: number): boolean {
    return this.ms.has(rows);
  }

  /** The running means, by rows (for /v1/cluster), rounded to 0.1 ms. */
  timings(): Record<number, number> {
    return Object.fromEntries([...this.ms].sort(([a], [b]) => a - b).map(([r, m]) => [r, Math.round(m * 10) / 10]));
  }

  /**
   * Milliseconds of a pass of `rows` rows: its running mean where timed (weighed against the line through the other
   * timed sizes until it was timed a few times), else the line's value. Before anything was timed, in units of a
   * one-row pass (what the choice of a draft length compares is a ratio).
   */
  passMs(rows: number): number {
    const timed = this.ms.get(rows);
    // The size's own mean is weighed against the line through the other sizes (an outlier does not bend its own check).
    const line = this.line(rows);
    const onLine = line ? Math.max(line.at(1), line.at(rows)) : undefined;
    if (timed !== undefined) {
      if (onLine === undefined) return timed;
      const n = Math.min(SIZE_WEIGHT_CAP, this.count.get(rows) ?? 1);
      return (n * timed + LINE_WEIGHT * onLine) / (n + LINE_WEIGHT);
    }
    if (onLine !== undefined) return onLine;
    const one = this.ms.size === 1 ? [...this.ms][0] : null;
    // One size timed: the prior slope through it, scaled to that size's time.
    const base = one ? one[1] / (1 + PRIOR_ROW_COST * (one[0] - 1)) : 1;
    return base * (1 + PRIOR_ROW_COST * (rows - 1));
  }

  /** Extra cost of one more row, in one-row passes (the slope of the line over its one-row value). */
  rowCost(): number {
    const line = this.line();
    if (!line) return PRIOR_ROW_COST;
    return Math.min(2, Math.max(0, line.slope / line.at(1)));
  }

  /**
   * The least-squares line through the timed sizes (but `without`), each weighed by how often it was timed (up to
   * the cap); null below two sizes, or when it gives a one-row pass no time.
   */
  private line(without?: number): { slope: number; at(rows: number): number } | null {
    const pts = [...this.ms].filter(([r]) => r !== without).map(([r, m]) => ({ r, m, w: Math.min(SIZE_WEIGHT_CAP, this.count.get(r) ?? 1) }));
    if (pts.length < 2) return null;
    const W = pts.reduce((s, p) => s + p.w, 0);
    const mx = pts.reduce((s, p) => s + p.w * p.r, 0) / W;
    const my = pts.reduce((s, p) => s + p.w * p.m, 0) / W;
    let sxy = 0;
    let sxx = 0;
    for (const p of pts) {
      sxy += p.w * (p.r - mx) * (p.m - my);
      sxx += p.w * (p.r - mx) ** 2;
    }
    const slope = sxy / sxx;
    const at = (rows: number) => my + slope * (rows - mx);
    return at(1) > 0 ? { slope, at } : null;
  }
}
