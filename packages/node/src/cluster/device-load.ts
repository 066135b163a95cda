import { BLOCK_RUNS_ALONE, BlockMeans } from './block-means.js';

/**
 * How busy a device is while it serves, as its node announces it. The planner divides the device's measured speed
 * by `slowdown` and caps its memory at `memoryBudgetBytes`.
 */
export interface DeviceLoad {
  /** Time this node's compute takes now ÷ the time it took when the device was quiet (1 = as profiled). */
  slowdown: number;
  /**
   * Measured ÷ predicted time of this node's stage compute while not announced busy: how far the profile's
   * prediction is off for this engine on this device (null until the node has run a stage). The planner divides
   * the profile's speed by it, so its predictions follow what the device really does.
   */
  calibration: number | null;
  /**
   * The same for the prompt's slices (many rows a step), measured against the profile's prefill speed; null until
   * the node has computed a prompt. It stands apart from `calibration`: the start-up profile can misjudge the two
   * speeds by different factors (a tiny model's products run far below the batched figure, a loaded start reads the
   * one-row figure low), and one factor for both put a prompt's time off by 2–5×.
   */
  promptCalibration: number | null;
  /**
   * What a network hop of this node's requests costs beyond what the links' fastest pings and the devices' fixed
   * costs predict, ms per hop: the mean of its recent blocks of steps (served-hops.ts); absent until the node has coordinated enough
   * steps over the network, and from nodes of an earlier version. The planner adds it to every link's latency.
   */
  hopExcessMs?: number;
  /** Where the figure comes from: its own stage compute, an idle probe kernel, or nothing yet. */
  source: 'stage' | 'probe' | 'none';
  /** When the slowdown reached about its current level (ms since epoch). */
  since: number;
  /** CPU cores' worth of time that other processes on the device took recently. */
  otherCpuCores: number;
  /** Memory available to the node now: the OS's MemAvailable, or less if its cgroup limit leaves less. */
  availableMemoryBytes: number;
  /** Memory the node offers the planner now; below the profile's memoryBytes under memory pressure or when lowered. */
  memoryBudgetBytes: number;
  /** Why memoryBudgetBytes is below the profile's memory, or '' when it is not. */
  memoryReason: string;
}

export interface SlowdownPolicy {
  /** Time constant of the smoothing (a spike shorter than this barely moves the figure). Default 4000 ms. */
  timeConstantMs?: number;
  /** A change smaller than this factor is not announced (deadband). Default 1.3. */
  announceFactor?: number;
  /** Below this the device counts as quiet (slowdown 1). Default 1.5. */
  quietBelow?: number;
  /** Samples before a source's figure counts. Default 3. */
  minSamples?: number;
}

/** A smoothed slowdown from which a device's runs count as throttled, not as its own speed. */
const THROTTLED = 3;

/**
 * Turns timing samples (measured ms against expected ms) into a calibration and a smoothed slowdown. The calibration
 * is what the device's runs take, mean for mean, against the profile's prediction when not busy (the prediction is
 * never exactly right, but it is right in proportion: more layers, more time); the slowdown is the recent runs
 * against it, so a quiet device reads 1 whatever the prediction's error.
 * Pure: time comes in with every sample.
 */
export class SlowdownEstimator {
  private logRatio = 0;
  private lastAt = 0;
  private samples = 0;
  private best = Infinity;
  /** What calibration() gives once it has a block: means, not the smoothed log-ratio's best (block-means.ts). */
  private readonly mean = new BlockMeans('ratio', true);
  private readonly tau: number;
  private readonly minSamples: number;
  private readonly throttledAbove = Math.log(THROTTLED);

  constructor(policy: SlowdownPolicy = {}) {
    this.tau = policy.timeConstantMs ?? 4000;
    this.minSamples = policy.minSamples ?? 3;
  }

  /**
   * One measurement: `measuredMs` for work the profile expects to take `expectedMs`. `announcedBusy`: its owner
   * announces the device busy now, so the run's slowness is in the slowdown it announced and stays out of the
   * calibration (counted in both, a device 2× busy would be priced 4× slow, and still 2× once quiet again).
   */
  add(at: number, measuredMs: number, expectedMs: number, announcedBusy = false): void {
    if (!(measuredMs > 0) || !(expectedMs > 0)) return;
    const x = Math.log(measuredMs / expectedMs);
    if (this.samples === 0) this.logRatio = x;
    else {
      // A run weighs the time it stands for (since the last one, at least its own), and at least one block's share:
      // quick runs must still raise the figure before their blocks enter the calibration (a lasting slowdown there
      // would read as the device's own speed). A floor of 5 % a run, as before, made the figure the last ~20 runs' on
      // a small model (a stories260K step takes 0.2 ms): a node preempted for a few ms by its neighbours' probes
      // announced itself 1.74× busy while it ran at its calibration, and its stage and prompt were priced 1.7× slow.
      const a = 1 - Math.exp(-Math.max(0, at - this.lastAt, measuredMs) / this.tau);
      this.logRatio += Math.max(a, 1 / BLOCK_RUNS_ALONE) * (x - this.logRatio);
    }
    this.lastAt = at;
    this.samples++;
    if (this.samples >= this.minSamples) this.best = Math.min(this.best, this.logRatio);
    // A throttled device's runs stay out of its calibration: one stall barely moves the smoothed ratio, a throttle
    // soon takes it past THROTTLED, or its owner announces it busy (and the open block, holding its first runs, is
    // dropped). A device a little busy, not announced, still counts, in blocks the trimmed mean of the recent ones of which
    // is taken: what its stages cost now, stalls included (the quietest block, taken before, put a ring's stages at
    // 0.5–0.7 of their mean on stories260K).
    if (announcedBusy || this.logRatio - this.best >= this.throttledAbove) this.mean.discard();
    else this.mean.add(at, measuredMs, expectedMs);
  }

  /**
   * The expectations changed (a re-measured profile predicts the same work in 1/`factor` of the time): the ratios seen
   * so far are carried over as the new profile would have given them, so the calibration follows the profile and the
   * slowdown goes on as it was.
   */
  rescale(factor: number): void {
    if (!(factor > 0) || !Number.isFinite(factor)) return;
    this.logRatio += Math.log(factor);
    if (Number.isFinite(this.best)) this.best += Math.log(factor);
    this.mean.rescale(factor);
  }

  /** Forgets every run: the next ones are of work the expectations price differently (other layers). */
  restart(): void {
    this.logRatio = 0;
    this.lastAt = 0;
    this.samples = 0;
    this.best = Infinity;
    this.mean.reset();
  }

  /**
   * Smoothed measured/expected relative to the calibration (before a block has closed, the best seen), or null before
   * `minSamples`. The planner prices a device at profile × calibration × slowdown, so the slowdown is what the
   * device takes now beyond its calibration: read against the best moment instead, the gap between a noisy device's
   * quickest moment and its mean (1.2–1.6× on stories260K's stages, nothing else running) was counted twice, a node
   * announced itself busy at 1.57× with other processes at 0.1 cores, and its stage was priced 1.6–2.7× slow.
   */
  slowdown(): number | null {
    if (this.samples < this.minSamples || !Number.isFinite(this.best)) return null;
    return Math.exp(this.logRatio) / this.calibration()!;
  }

  /**
   * Measured/expected of the device when not announced busy (absolute): the recent blocks' mean less the slowest block
   * (block-means.ts) once a block has closed, before that the best smoothed ratio; null before `minSamples`.
   */
  calibration(): number | null {
    if (!Number.isFinite(this.best)) return null;
    return this.mean.trimmedMean() ?? Math.exp(this.best);
  }

  /** When the last sample came (ms). */
  get lastSampleAt(): number {
    return this.lastAt;
  }
}

/**
 * Whether a newly estimated slowdown should be announced in place of the one peers know: only a change beyond
 * the deadband, so that noise does not make every node re-plan. A quiet device turns busy at `quietBelow`; a busy
 * one turns quiet again only below `quietBelow` ÷ √`announceFactor` (hysteresis). Returns the figure to announce.
 */
export function announcedSlowdown(previous: number, estimate: number, policy: SlowdownPolicy = {}): number {
  const quiet = policy.quietBelow ?? 1.5;
  const band = policy.announceFactor ?? 1.3;
  const rounded = Math.round(estimate * 100) / 100;
  if (previous === 1) return estimate >= quiet ? rounded : 1;
  if (estimate < quiet / Math.sqrt(band)) return 1;
  const ratio = rounded > previous ? rounded / previous : previous / rounded;
  return ratio >= band ? Math.max(rounded, quiet) : previous;
}

export interface MemoryPressureState {
  /** Budget the node offers while under pressure. */
  capBytes: number;
  /** Available memory when the cap was set. */
  availableAtCut: number;
}

/**
 * The memory budget under pressure. When less than `reserveBytes` is available the node cuts its budget by the
 * shortfall (so the planner moves that much of its layers away); it cuts again only if available memory falls
 * further — memory the node freed may not show as available (a WebAssembly heap never shrinks) — and lifts the
 * cap once twice the reserve is free again.
 */
export function memoryPressureCap(
  state: MemoryPressureState | null,
  o: { availableBytes: number; heldBytes: number; reserveBytes: number },
): MemoryPressureState | null {
  if (o.availableBytes >= 2 * o.reserveBytes) return null;
  if (o.availableBytes >= o.reserveBytes) return state;
  if (state && o.availableBytes >= state.availableAtCut - 0.1 * o.reserveBytes) return state;
  const from = state ? Math.min(state.capBytes, o.heldBytes) : o.heldBytes;
  return { capBytes: Math.max(0, Math.floor(from - (o.reserveBytes - o.availableBytes))), availableAtCut: o.availableBytes };
}
