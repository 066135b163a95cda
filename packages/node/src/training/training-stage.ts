import { ComputeSlices } from '../engine/compute-slices.js';
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
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly startLayer: number,
    readonly endLayer: number,
    private readonly trainer: LayerRangeTrainer,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  forward(id: number, x: Float32Array, rows: number): Promise<Float32Array> {
    return this.serial(async () => (await this.trainer.forwardSliced(id, x, rows, new ComputeSlices())) as Float32Array);
  }

  backward(id: number, grad: Float32Array): Promise<Float32Array> {
    return this.serial(async () => (await this.trainer.backwardSliced(id, grad, new ComputeSlices())) as Float32Array);
  }

  gradSquareSum(start: number): Promise<number> {
    return this.serial(async () => this.trainer.gradSquareSum(start));
  }

  step(clipScale: number | null): Promise<void> {
    return this.serial(async () => this.trainer.step(clipScale));
  }

  exportSlice(): Promise<LayerLora[]> {
    return this.serial(async () => this.trainer.lora.map((l) => copyLayer(l)));
  }

  exportState(): Promise<TrainerState> {
    return this.serial(async () => this.trainer.state());
  }

  close(): Promise<void> {
    return this.onClose();
  }

  /**
   * One op at a time, in call order: an op lets the event loop turn between layers, and another op must not run
   * meanwhile (two backwards interleaved would add into the same gradients in another order).
   */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op);
    this.queue = result.catch(() => {});
    return result;
  }
}

function copyLayer(l: LayerLora): LayerLora {
  return Object.fromEntries(Object.entries(l).map(([k, p]) => [k, { ...p, a: p.a.slice(), b: p.b.slice() }])) as LayerLora;
}
