/**
 * Tokens over a sliding window of time, for a rate. Each token's time is queued and dropped from the head as it ages
 * out, so a token costs O(1) however many the window holds. (Filtering the window on every token, as before, cost
 * O(window) a token once it held more than 4,096: from the 64th request of 64 tokens on, stories260K's coordinator
 * took 0.1–0.2 ms a token instead of 0.02, for a model whose token takes 0.2.)
 */
export class TokenRate {
  private times: number[] = [];
  private head = 0;

  constructor(private readonly windowMs: number) {}

  /** `tokens` tokens at `now` (ms, non-decreasing). */
  add(now: number, tokens = 1): void {
    for (let i = 0; i < tokens; i++) this.times.push(now);
    this.prune(now);
  }

  /** Tokens per second over the span the window covers, at least 1 s (a burst just started is not diluted by idle time); 0 below 2 tokens. */
  perSecond(now: number): number {
    this.prune(now);
    const n = this.times.length - this.head;
    if (n < 2) return 0;
    const span = Math.max(now - this.times[this.head], 1000);
    return Math.round((n / span) * 1000 * 10) / 10;
  }

  private prune(now: number): void {
    const from = now - this.windowMs;
    while (this.head < this.times.length && this.times[this.head] < from) this.head++;
    // The queue is compacted once most of it has aged out: amortised O(1) a token.
    if (this.head >= 1024 && this.head * 2 >= this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}
