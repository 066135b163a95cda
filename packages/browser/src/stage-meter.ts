/** Rows (tokens) this tab's stage computed: a total and the rate over a sliding window, for the page. */
export class StageMeter {
  total = 0;
  computeMs = 0;
  private readonly recent: { at: number; rows: number }[] = [];
  private firstAt: number | null = null;

  constructor(private readonly windowMs = 5000) {}

  add(rows: number, ms: number, now = performance.now()): void {
    this.firstAt ??= now;
    this.total += rows;
    this.computeMs += ms;
    this.recent.push({ at: now, rows });
    this.trim(now);
  }

  /** Rows per second over the window (over the time since the first row while that is shorter; at least 1 s). */
  rate(now = performance.now()): number {
    this.trim(now);
    if (this.recent.length === 0 || this.firstAt === null) return 0;
    const span = Math.min(this.windowMs, Math.max(1000, now - this.firstAt));
    return (this.recent.reduce((a, r) => a + r.rows, 0) * 1000) / span;
  }

  private trim(now: number): void {
    while (this.recent.length > 0 && now - this.recent[0].at > this.windowMs) this.recent.shift();
  }
}
