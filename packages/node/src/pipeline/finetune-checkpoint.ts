import type { TrainerState } from '../training/layer-range-trainer.js';
import { LORA_PROJECTIONS } from '../model/lora-adapter.js';
import type { TrainingStage } from '../training/training-stage.js';
import type { Vec } from '../training/vec.js';

/** Arrays per layer in a stage's state: A and B of each adapted projection. */
const PER_LAYER = LORA_PROJECTIONS.length * 2;

/**
 * The owner's copy of a job's training state after a step — every layer's A and B and AdamW's moments, the step
 * count — taken from the stages every few steps, so that a job that lost a stage goes on from it on a new split.
 * The data order depends only on the step, so steps redone from a checkpoint give the bits they gave the first time.
 */
export class FinetuneCheckpoint {
  private constructor(
    /** Steps done when it was taken. */
    readonly step: number,
    private readonly t: number,
    /** Per layer: its arrays in loraArrays order, and their moments. */
    private readonly layers: { params: Vec[]; m: Vec[]; v: Vec[] }[],
  ) {}

  /** The stages' states, in layer order, after `step` steps. */
  static async take(stages: readonly TrainingStage[], step: number): Promise<FinetuneCheckpoint> {
    const states = await Promise.all(stages.map((s) => s.exportState()));
    const layers = states.flatMap((st, i) =>
      Array.from({ length: stages[i].endLayer - stages[i].startLayer }, (_, l) => ({
        params: st.params.slice(l * PER_LAYER, (l + 1) * PER_LAYER),
        m: st.m.slice(l * PER_LAYER, (l + 1) * PER_LAYER),
        v: st.v.slice(l * PER_LAYER, (l + 1) * PER_LAYER),
      })),
    );
    return new FinetuneCheckpoint(step, states[0].t, layers);
  }

  /** The state of layers [start, end): what a stage of the new split opens with. */
  slice(startLayer: number, endLayer: number): TrainerState {
    const part = this.layers.slice(startLayer, endLayer);
    return { t: this.t, params: part.flatMap((l) => l.params), m: part.flatMap((l) => l.m), v: part.flatMap((l) => l.v) };
  }
}
