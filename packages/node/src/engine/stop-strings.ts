/**
 * Holds back text that might be the start of a stop string, and cuts the output before the first stop string.
 */
export class StopStringFilter {
  private pending = '';
  stopped = false;
  /** The stop string found (the earliest in the text), once stopped. */
  matched: string | null = null;
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  push(delta: string): { emitted: string; stopped: boolean } {
    if (this.stopped) return { emitted: '', stopped: true };
    if (this.stops.length === 0) return { emitted: delta, stopped: false };
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      if (!s) continue;
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        this.matched = s;
      }
    }
    if (cut >= 0) {
      this.stopped = true;
      const emitted = this.pending.slice(0, cut);
      this.pending = '';
      return { emitted, stopped: true };
    }
    // Keep the longest tail that could still grow into a stop string.
    let keep = 0;
    for (let k = Math.min(this.longest - 1, this.pending.length); k > 0; k--) {
      const tail = this.pending.slice(-k);
      if (this.stops.some((s) => s.startsWith(tail))) {
        keep = k;
        break;
      }
    }
    const emitted = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { emitted, stopped: false };
  }

  flush(): string {
    const rest = this.stopped ? '' : this.pending;
    this.pending = '';
    return rest;
  }
}
