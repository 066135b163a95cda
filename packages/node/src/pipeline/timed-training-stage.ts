import type { TrainerState } from '../training/layer-range-trainer.js';
import type { LayerLora } from '../training/lora-set.js';
import type { TrainingStage } from '../training/training-stage.js';

/** Ops of a step whose time the owner adds up per stage. */
const TIMED_OPS = ['forward', 'backward', 'grad-norm', 'step'] as const;
type TimedOp = (typeof TIMED_OPS)[number];

/**
 * A stage as the owner waits for it: each op's wall time from the owner's call to its answer (for a remote stage the
 * relay there and back, the frames' codec and the stage's compute; for the owner's own, its compute), added up per op,
 * so that a job can say where its steps went against the plan's prediction. Ops of different stages overlap in 1F1B,
 * so the sums may exceed the step's time.
 */
export class TimedTrainingStage implements TrainingStage {
  private readonly ms = new Map<TimedOp, number>(TIMED_OPS.map((op) => [op, 0]));

  constructor(readonly inner: TrainingStage) {}

  get name(): string {
    return this.inner.name;
  }
  get startLayer(): number {
    return this.inner.startLayer;
  }
  get endLayer(): number {
    return this.inner.endLayer;
  }

  forward(id: number, x: Float32Array, rows: number): Promise<Float32Array> {
    return this.timed('forward', () => this.inner.forward(id, x, rows));
  }
  backward(id: number, grad: Float32Array): Promise<Float32Array> {
    return this.timed('backward', () => this.inner.backward(id, grad));
  }
  gradSquareSum(start: number): Promise<number> {
    return this.timed('grad-norm', () => this.inner.gradSquareSum(start));
  }
  step(clipScale: number | null): Promise<void> {
    return this.timed('step', () => this.inner.step(clipScale));
  }
  exportSlice(): Promise<LayerLora[]> {
    return this.inner.exportSlice();
  }
  exportState(): Promise<TrainerState> {
    return this.inner.exportState();
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  /** "forward 1.20, backward 2.31, grad-norm 0.10, step 0.05" ms per step over `steps` steps. */
  perStep(steps: number): string {
    return TIMED_OPS.map((op) => `${op} ${(this.ms.get(op)! / Math.max(1, steps)).toFixed(2)}`).join(', ');
  }

  private async timed<T>(op: TimedOp, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.ms.set(op, this.ms.get(op)! + performance.now() - t0);
    }
  }
}
