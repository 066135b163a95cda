/**
 * A block closes once it holds BLOCK_RUNS runs over BLOCK_SPAN_MS, or BLOCK_RUNS_ALONE runs however quick: long enough
 * that its mean holds a stall (stories260K's bench decodes 256 runs of a split in ~200 ms).
 */
const BLOCK_RUNS = 32;
const BLOCK_SPAN_MS = 250;
const BLOCK_RUNS_ALONE = 128;

/** A block's means: measured and expected ms per run. */
interface BlockMeans {
  measured: number;
  expected: number;
}

/**
 * How a device's measured runs compare with what was expected of them, as a mean over blocks of runs — the quietest
 * block's: measured ÷ expected (`ratio`, for compute, which scales with the work) or measured − expected per run
 * (`difference`, for a fixed cost such as a hop's). The planner adds up mean times (a token's time is a sum of stages
 * and hops), so it must be given the mean: a smoothed log-ratio's best moment is the typical run at its quickest, and
 * on a small model, whose steps stall now and then (a pause, a late wake-up), that put a stage's mean at 1.5–2.2× its
 * prediction. Its owner drops the open block when the device turns busy, and the quietest block counts, so a throttle
 * does not enter it. Pure: time comes in with every run.
 */
export class QuietBlockMean {
  private measured = 0;
  private expected = 0;
  private runs = 0;
  private openedAt = 0;
  private quietest: BlockMeans | null = null;

  constructor(private readonly figure: 'ratio' | 'difference') {}

  add(at: number, measuredMs: number, expectedMs: number): void {
    if (!(measuredMs > 0) || !(expectedMs > 0)) return;
    if (this.runs === 0) this.openedAt = at;
    this.measured += measuredMs;
    this.expected += expectedMs;
    this.runs++;
    if ((this.runs >= BLOCK_RUNS && at - this.openedAt >= BLOCK_SPAN_MS) || this.runs >= BLOCK_RUNS_ALONE) {
      const block = { measured: this.measured / this.runs, expected: this.expected / this.runs };
      if (this.quietest === null || this.valueOf(block) < this.valueOf(this.quietest)) this.quietest = block;
      this.discard();
    }
  }

  /** The device turned busy: the open block's runs (the start of it among them) are not the quiet device's. */
  discard(): void {
    this.measured = 0;
    this.expected = 0;
    this.runs = 0;
  }

  /** Forgets every block. */
  reset(): void {
    this.discard();
    this.quietest = null;
  }

  /** The expectations changed by 1/`factor` for the same work (a re-measured profile): the blocks follow. */
  rescale(factor: number): void {
    if (!(factor > 0) || !Number.isFinite(factor)) return;
    if (this.quietest) this.quietest = { measured: this.quietest.measured, expected: this.quietest.expected / factor };
    this.expected /= factor;
  }

  /** The quietest closed block's figure (ratio or difference, ms), or null before a block has closed. */
  value(): number | null {
    return this.quietest === null ? null : this.valueOf(this.quietest);
  }

  private valueOf(b: BlockMeans): number {
    return this.figure === 'ratio' ? b.measured / b.expected : b.measured - b.expected;
  }
}
