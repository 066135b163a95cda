/**
 * A block closes once it holds BLOCK_RUNS runs over BLOCK_SPAN_MS, or BLOCK_RUNS_ALONE runs however quick: long enough
 * that its mean holds a stall (stories260K's bench decodes 256 runs of a split in ~200 ms).
 */
const BLOCK_RUNS = 32;
const BLOCK_SPAN_MS = 250;
export const BLOCK_RUNS_ALONE = 128;
/** Closed blocks `trimmedMean()` and `recentMean()` read: the last few seconds of a busy ring. */
const RECENT_BLOCKS = 8;

/** A block's means: measured and expected ms per run. */
interface BlockMean {
  measured: number;
  expected: number;
}

/**
 * How a device's measured runs compare with what was expected of them, as means over blocks of runs: measured ÷
 * expected (`ratio`, for compute, which scales with the work) or measured − expected per run (`difference`, for a
 * fixed cost such as a hop's). The planner adds up mean times (a token's time is a sum of stages and hops), so it must
 * be given means: a smoothed log-ratio's best moment is the typical run at its quickest, and on a small model, whose
 * steps stall now and then (a pause, a late wake-up), that put a stage's mean at 1.5–2.2× its prediction; the
 * quietest block, taken after it, put a ring's stages and hops below their means. `trimmedMean()` is the recent
 * blocks' together less the slowest (a calibration: the node's announced slowdown scales it, and its owner keeps the
 * runs made while busy out); `recentMean()` all of them together (a hop's cost, which nothing else scales: its stalls
 * are part of it). Pure: time comes in with every run.
 */
export class BlockMeans {
  private measured = 0;
  private expected = 0;
  private runs = 0;
  private openedAt = 0;
  private recent: BlockMean[] = [];
  /** The figures of `recent`, computed when it changes (a block closes), not on every read: a stage reads its calibration every run. */
  private figures: { mean: number | null; trimmed: number | null } = { mean: null, trimmed: null };
  /** With `holdBack`: the last closed block, not counted until the one after it closes too. */
  private held: BlockMean | null = null;

  /**
   * `holdBack`: a closed block counts only once the next one closes as well, and `discard()` drops it with the open
   * one. A throttle is recognised some runs after it starts (its smoothed ratio must climb), so its first runs can end
   * a block before it is: held back, that block is dropped with the rest (counted, a 4× throttle starting in a block's
   * last runs put the calibration at 2× the quiet device, and the slowdown read against it at half the throttle).
   */
  constructor(
    private readonly figure: 'ratio' | 'difference',
    private readonly holdBack = false,
  ) {}

  add(at: number, measuredMs: number, expectedMs: number): void {
    if (!(measuredMs > 0) || !(expectedMs > 0)) return;
    if (this.runs === 0) this.openedAt = at;
    this.measured += measuredMs;
    this.expected += expectedMs;
    this.runs++;
    if ((this.runs >= BLOCK_RUNS && at - this.openedAt >= BLOCK_SPAN_MS) || this.runs >= BLOCK_RUNS_ALONE) {
      const block = { measured: this.measured / this.runs, expected: this.expected / this.runs };
      const counted = this.holdBack ? this.held : block;
      if (this.holdBack) this.held = block;
      if (counted) this.setRecent([...this.recent, counted].slice(-RECENT_BLOCKS));
      this.dropOpen();
    }
  }

  /** The device turned busy: the open block's runs (the start of it among them), and a held-back block, are not the quiet device's. */
  discard(): void {
    this.dropOpen();
    this.held = null;
  }

  /** Forgets every block. */
  reset(): void {
    this.discard();
    this.setRecent([]);
  }

  private dropOpen(): void {
    this.measured = 0;
    this.expected = 0;
    this.runs = 0;
  }

  /** The expectations changed by 1/`factor` for the same work (a re-measured profile): the blocks follow. */
  rescale(factor: number): void {
    if (!(factor > 0) || !Number.isFinite(factor)) return;
    const follow = (b: BlockMean) => ({ measured: b.measured, expected: b.expected / factor });
    this.setRecent(this.recent.map(follow));
    if (this.held) this.held = follow(this.held);
    this.expected /= factor;
  }

  /** The figure of the last RECENT_BLOCKS closed blocks taken together (their runs' mean), or null before one. */
  recentMean(): number | null {
    return this.figures.mean;
  }

  /**
   * The figure of the last RECENT_BLOCKS closed blocks together less the one with the highest figure (of two, the
   * lower; of one, it), or null before one: a mean, stalls included, as the planner adds means up, but not a
   * split's warm-up block or one long pause. The median of the blocks, taken before, left out every stall: on
   * stories260K, whose 128-run blocks last 25 ms, it priced the whole model at 0.14–0.16 ms a step where the node's
   * steps took 0.18–0.22 on the mean (p50 0.15).
   */
  trimmedMean(): number | null {
    return this.figures.trimmed;
  }

  private setRecent(blocks: BlockMean[]): void {
    this.recent = blocks;
    if (blocks.length === 0) {
      this.figures = { mean: null, trimmed: null };
      return;
    }
    const slowest = blocks.reduce((worst, b, i) => (this.valueOf(b) > this.valueOf(blocks[worst]) ? i : worst), 0);
    const trimmed = blocks.length === 1 ? this.valueOf(blocks[0]) : this.together(blocks.filter((_, i) => i !== slowest));
    this.figures = { mean: this.together(blocks), trimmed };
  }

  private together(blocks: readonly BlockMean[]): number {
    const n = blocks.length;
    return this.valueOf({ measured: blocks.reduce((a, b) => a + b.measured, 0) / n, expected: blocks.reduce((a, b) => a + b.expected, 0) / n });
  }

  private valueOf(b: BlockMean): number {
    return this.figure === 'ratio' ? b.measured / b.expected : b.measured - b.expected;
  }
}
