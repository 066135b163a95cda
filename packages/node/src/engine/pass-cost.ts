/** Weight of the newest pass in the running milliseconds of passes of its size. */
const COST_WEIGHT = 0.2;
/** Before two pass sizes were timed: an extra row at a tenth of a walk (a ring's hops dominate small passes). */
const PRIOR_ROW_COST = 0.1;

/**
 * The measured cost of a pass through the pipeline as a function of its rows (1: a plain walk; 1 + k: verifying k
 * drafts): a running mean of milliseconds per pass size, shared by a node's requests. A size not timed yet is read
 * off the least-squares line through the sizes that were.
 */
export class PassCost {
  private readonly ms = new Map<number, number>();

  record(rows: number, ms: number): void {
    if (!(ms >= 0) || rows < 1) return;
    const prev = this.ms.get(rows);
    this.ms.set(rows, prev === undefined ? ms : (1 - COST_WEIGHT) * prev + COST_WEIGHT * ms);
  }

  /** The running means, by rows (for /v1/cluster), rounded to 0.1 ms. */
  timings(): Record<number, number> {
    return Object.fromEntries([...this.ms].sort(([a], [b]) => a - b).map(([r, m]) => [r, Math.round(m * 10) / 10]));
  }

  /**
   * Milliseconds of a pass of `rows` rows: its running mean where timed, else the line's value. Before anything was
   * timed, in units of a one-row pass (what the choice of a draft length compares is a ratio).
   */
  passMs(rows: number): number {
    const timed = this.ms.get(rows);
    if (timed !== undefined) return timed;
    const line = this.line();
    if (line) return Math.max(line.at(1), line.at(rows));
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

  /** The least-squares line through the timed sizes (null below two sizes, or when it gives a one-row pass no time). */
  private line(): { slope: number; at(rows: number): number } | null {
    if (this.ms.size < 2) return null;
    const pts = [...this.ms];
    const mx = pts.reduce((s, [r]) => s + r, 0) / pts.length;
    const my = pts.reduce((s, [, m]) => s + m, 0) / pts.length;
    let sxy = 0;
    let sxx = 0;
    for (const [r, m] of pts) {
      sxy += (r - mx) * (m - my);
      sxx += (r - mx) ** 2;
    }
    const slope = sxy / sxx;
    const at = (rows: number) => my + slope * (rows - mx);
    return at(1) > 0 ? { slope, at } : null;
  }
}
