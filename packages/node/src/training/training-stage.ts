import type { LayerRangeTrainer, TrainerState } from './layer-range-trainer.js';
import type { LayerLora } from './lora-set.js';

/**
 * A layer range as the data's owner drives it, on this device or another: hidden states forward, gradients back,
 * the gradients' square sum, a step, its slice of the adapter. Calls on one stage are answered in the order they were
 * made (the owner relies on it for the backward order).
 */
export interface TrainingStage {
  /** For errors and logs: which node and layers. */
  readonly name: string;
  readonly startLayer: number;
  readonly endLayer: number;
  forward(id: number, x: Float32Array, rows: number): Promise<Float32Array>;
  backward(id: number, grad: Float32Array): Promise<Float32Array>;
  /** `start` plus this stage's gradients' square sum (LayerRangeTrainer.gradSquareSum). */
  gradSquareSum(start: number): Promise<number>;
  /** Gradients scaled by clipScale (null: as they are), AdamW, gradients zeroed. */
  step(clipScale: number | null): Promise<void>;
  /** The stage's A and B (copies). */
  exportSlice(): Promise<LayerLora[]>;
  /** The stage's training state after the last step (a checkpoint the owner keeps). */
  exportState(): Promise<TrainerState>;
  close(): Promise<void>;
}

/** A LayerRangeTrainer on this device as a TrainingStage (one device's whole model, or the owner's own stage). */
export class LocalTrainingStage implements TrainingStage {
  constructor(
    readonly name: string,
    readonly startLayer: number,
    readonly endLayer: number,
    private readonly trainer: LayerRangeTrainer,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  forward(id: number, x: Float32Array, rows: number): Promise<Float32Array> {
    return Promise.resolve().then(() => this.trainer.forward(id, x, rows) as Float32Array);
  }

  backward(id: number, grad: Float32Array): Promise<Float32Array> {
    return Promise.resolve().then(() => this.trainer.backward(id, grad) as Float32Array);
  }

  gradSquareSum(start: number): Promise<number> {
    return Promise.resolve(this.trainer.gradSquareSum(start));
  }

  step(clipScale: number | null): Promise<void> {
    return Promise.resolve().then(() => this.trainer.step(clipScale));
  }

  exportSlice(): Promise<LayerLora[]> {
    return Promise.resolve(this.trainer.lora.map((l) => copyLayer(l)));
  }

  exportState(): Promise<TrainerState> {
    return Promise.resolve(this.trainer.state());
  }

  close(): Promise<void> {
    return this.onClose();
  }
}

function copyLayer(l: LayerLora): LayerLora {
  return Object.fromEntries(Object.entries(l).map(([k, p]) => [k, { ...p, a: p.a.slice(), b: p.b.slice() }])) as LayerLora;
}
