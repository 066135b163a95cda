import { CostModel, type ModelProfile } from '@edge-node/partitioner';
import type { DeviceProfile } from '../cluster/device-profile.js';
import type { ComputeSample } from '../engine/batch-scheduler.js';

/** A part this many rows long makes a step a prompt's slice (prompts are computed 32 rows a step). */
const PROMPT_SAMPLE_ROWS = 16;

/** A stage run as the device watch reads it. */
export interface StageRunReading {
  kind: 'decode' | 'prompt';
  /** What the node's profile predicts the run to take, ms. */
  expectedMs: number;
  /**
   * On the first run of its kind after the profile changed (re-measured): what the previous profile predicted for
   * it, so that the calibration of that kind follows the new profile instead of starting afresh.
   */
  expectedByPreviousMs?: number;
  /** The run is of other layers than the kind's previous run (the plan moved this stage). */
  newRange?: true;
  /**
   * A prompt's slice: the profile's pass after idling, which expectedMs leaves out. The planner prices a slice's pass
   * at the decode calibration (clusterOf), so the prompt calibration is read on what the slice took beyond that.
   */
  passMs?: number;
}

/**
 * What a node's profile predicts for a run of its stage, the partitioner's cost model on this one device. A decode
 * step (each request one row) is priced at the profile's one-row speed, its pass included; a prompt's slice at its
 * batched (prefill) speed without its pass (passMs), as the partitioner prices a whole prompt — so the ratio
 * measured ÷ expected calibrates each of the two figures the planner uses. A step of a few rows per request (a
 * verification of drafts) is neither and is left out.
 */
export class StageRunExpectation {
  private cached: { profile: DeviceProfile; decode: CostModel; prompt: CostModel } | null = null;
  /** The model each kind of run was last priced with, and the layers it ran. */
  private readonly lastOf: Record<StageRunReading['kind'], { profile: DeviceProfile; cm: CostModel; startLayer: number; endLayer: number } | null> = { decode: null, prompt: null };

  constructor(private readonly model: ModelProfile) {}

  /** The reading of a run, or null when it is neither kind or the profile has no figures to predict with. */
  read(sample: ComputeSample, profile: DeviceProfile): StageRunReading | null {
    const prompt = sample.parts.some((p) => p.rows >= PROMPT_SAMPLE_ROWS);
    if (!prompt && sample.parts.some((p) => p.rows > 1)) return null;
    const models = this.models(profile);
    if (models === null) return null;
    const kind = prompt ? 'prompt' : 'decode';
    const cm = models[kind];
    const last = this.lastOf[kind];
    const { startLayer, endLayer } = sample;
    this.lastOf[kind] = { profile, cm, startLayer, endLayer };
    const expectedMs = cm.stepMs(0, startLayer, endLayer, sample.parts);
    const moved = last !== null && (last.startLayer !== startLayer || last.endLayer !== endLayer) ? { newRange: true as const } : {};
    const pass = prompt ? { passMs: profile.passOverheadMs ?? 0 } : {};
    if (last === null || last.profile === profile) return { kind, expectedMs, ...moved, ...pass };
    return { kind, expectedMs, expectedByPreviousMs: last.cm.stepMs(0, sample.startLayer, sample.endLayer, sample.parts), ...moved, ...pass };
  }

  private models(profile: DeviceProfile): { decode: CostModel; prompt: CostModel } | null {
    if (this.cached?.profile === profile) return this.cached;
    // A pass's cost after idling is priced apart (the partitioner adds it to every stage whatever its layers), so a
    // decode step's expectation holds it beside the kernels' roofline: a calibration is the ratio of both together,
    // and clusterOf scales both by it (a ratio taken over both and applied to the kernels alone put a stage at
    // 0.5–0.7 of its mean). clusterOf scales the pass by the decode calibration for a prompt's slices too, so a
    // slice's expectation is its roofline alone and the pass is taken off what it measured (passMs): on stories260K a
    // prompt read 5–15× its roofline, and that ratio taken over roofline and pass left the pass at the decode
    // calibration, so a 4-slice prompt was predicted 1.5–4 ms short of 7.
    const pass = profile.passOverheadMs !== undefined ? { passOverheadMs: profile.passOverheadMs } : {};
    const device = (gflops: number, withPass: boolean) => ({ id: 'self', gflops, gflopsPrefill: gflops, memBandwidthGBps: profile.memBandwidthGBps, memoryBytes: Math.max(1, profile.memoryBytes), ...(withPass ? pass : {}) });
    const request = { promptTokens: 1, genTokens: 1 };
    try {
      this.cached = {
        profile,
        decode: new CostModel(this.model, { devices: [{ ...device(profile.gflopsDecode, true), gflopsPrefill: profile.gflopsPrefill }], links: [] }, request),
        prompt: new CostModel(this.model, { devices: [device(profile.gflopsPrefill, false)], links: [] }, request),
      };
    } catch {
      return null; // a profile without figures predicts nothing
    }
    return this.cached;
  }
}
