/**
 * The bench's progress line on stderr: step count, bar, what runs now and the time so far. Redraws one line on a
 * terminal; on a file or pipe it prints a line per step, so logs stay readable. (Same look as the download bar.)
 */
export class BenchProgress {
  private done = 0;
  private readonly start = Date.now();

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly width = 24,
  ) {}

  /** Shows `what` as running now (without counting a step). */
  status(what: string): void {
    this.draw(what);
  }

  /** Counts one finished step. */
  tick(what: string): void {
    this.done = Math.min(this.total, this.done + 1);
    this.draw(what);
  }

  /** Ends the line (on a terminal). */
  finish(): void {
    if (this.out.isTTY) this.out.write('\n');
  }

  private draw(what: string): void {
    const frac = this.total > 0 ? this.done / this.total : 1;
    const filled = Math.round(frac * this.width);
    const s = Math.round((Date.now() - this.start) / 1000);
    const line = `bench [${'#'.repeat(filled)}${'-'.repeat(this.width - filled)}] ${String(this.done).padStart(String(this.total).length)}/${this.total} ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}  ${what}`;
    if (this.out.isTTY) this.out.write(`\r\x1b[2K${line.slice(0, (this.out.columns || 120) - 1)}`);
    else this.out.write(`${line}\n`);
  }
}
