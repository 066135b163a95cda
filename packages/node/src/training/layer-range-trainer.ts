import type { ComputeSlices } from '../engine/compute-slices.js';
import { AdamW, addSquares, scaleInPlace, type AdamWOptions } from './adamw.js';
import type { FrozenRange } from './frozen-model.js';
import { layerBackward, layerForward, positionsTable, type LayerSaved } from './layer-grad.js';
import { loraArrays, zerosLikeLora, type LayerLora, type LoraSet } from './lora-set.js';
import type { Vec } from './vec.js';

export class MicroBatchError extends Error {
  override name = 'MicroBatchError';
}

/** A micro-batch between its forward and its backward: its input rows, and its activations unless they are recomputed. */
interface Pending {
  x: Vec;
  rows: number;
  saved: LayerSaved[] | null;
}

/**
 * What a micro-batch keeps between its forward and its backward. The forward is deterministic, so all give the same
 * bits; they differ in memory and in work:
 * - 'keep': every layer's activations (one device, one micro-batch at a time: nothing is run twice);
 * - 'recompute': only its input, the range's forward run again in its backward (the least memory: a stage with
 *   several micro-batches in flight holds one sequence's activations at a time, in the backward);
 * - { keepUpTo: n }: its activations when the stage then holds at most n sequences' activations at any time, else
 *   only its input. Backwards come in the forwards' order, so when an older micro-batch is recomputed, the kept ones
 *   older than it have come back: what is held then is the kept ones younger than it, this one, and the recomputed
 *   one's. With
 *   n = 1 a micro-batch keeps its activations when none is in flight at its forward (the last stage of a 1F1B
 *   pipeline, whose backward follows its forward; any stage after an idle spell): what 'recompute' holds at most, and
 *   the least the job's memory estimate counts. With n = the micro-batches in flight nothing is recomputed; the
 *   estimate then counts n (partitioner training-memory.ts, `kept`).
 */
export type ActivationPolicy = 'keep' | 'recompute' | { keepUpTo: number };
export interface LayerRangeTrainerOptions {
  activations: ActivationPolicy;
  /** The optimiser of `step` (a trainer that only computes gradients has none). */
  adamw?: AdamWOptions;
  /** Where the gradients add up (default: new zeroed arrays). */
  grads?: LayerLora[];
  /** A checkpoint to resume from: the adapter's values and AdamW's moments and step count (trainer.state()). */
  resume?: TrainerState;
}

/** A range's training state after a step: its arrays (A and B, in loraArrays order), AdamW's moments and step count. */
export interface TrainerState {
  t: number;
  params: Vec[];
  m: Vec[];
  v: Vec[];
}

/**
 * Forward and backward of a contiguous range of layers with its slice of the adapter: what one device runs for the
 * whole model, and what each stage of a pipeline runs for its layers. Micro-batches go forward in any number and
 * come back in the same order (so every stage adds its gradients in micro-batch order, and a split gives the bits
 * of the whole); `backward` returns the input's gradient and adds the slice's LoRA gradients into `grads`.
 */
export class LayerRangeTrainer {
  readonly grads: LayerLora[];
  private readonly pending = new Map<number, Pending>();
  /** Micro-batch ids in the order they went forward: the order they must come back. */
  private readonly order: number[] = [];
  private readonly opt: AdamW | null;

  constructor(
    private readonly m: FrozenRange,
    readonly lora: LayerLora[],
    private readonly opts: LayerRangeTrainerOptions,
  ) {
    if (lora.length !== m.layers.length) throw new MicroBatchError(`the adapter slice has ${lora.length} layers, the range ${m.layers.length}`);
    this.grads = opts.grads ?? zerosLikeLora(this.asSet(lora)).layers;
    this.opt = opts.adamw ? new AdamW(this.asSet(lora), opts.adamw) : null;
    if (opts.resume) {
      const params = loraArrays(this.asSet(lora));
      const r = opts.resume;
      if (!this.opt || r.params.length !== params.length || r.params.some((p, i) => p.length !== params[i].length)) {
        throw new MicroBatchError(`a checkpoint of ${r.params.length} arrays does not fit this range's ${params.length} (or there is no optimiser to resume)`);
      }
      r.params.forEach((p, i) => params[i].set(p));
      this.opt.loadState(r);
    }
  }

  /** The state to resume from after this step (copies). */
  state(): TrainerState {
    if (!this.opt) throw new MicroBatchError('this trainer has no optimiser');
    return { ...this.opt.exportState(), params: loraArrays(this.asSet(this.lora)).map((p) => p.slice()) };
  }

  /** Micro-batches gone forward and not yet back. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Whether a micro-batch going forward now keeps its activations (ActivationPolicy). */
  private keeps(): boolean {
    const a = this.opts.activations;
    if (a === 'keep' || a === 'recompute') return a === 'keep';
    // Held with this one: every kept one; and while the oldest one without activations is recomputed (in its
    // backward, after the older kept ones have come back), the kept ones younger than it, this one and its own.
    let kept = 0;
    let keptAfterUnsaved = 0;
    let unsaved = false;
    for (const id of this.order) {
      if (!this.pending.get(id)!.saved) unsaved = true;
      else {
        kept++;
        if (unsaved) keptAfterUnsaved++;
      }
    }
    return kept + 1 <= a.keepUpTo && (!unsaved || keptAfterUnsaved + 2 <= a.keepUpTo);
  }

  /** Micro-batches in flight whose activations are held (the rest keep only their input and recompute). */
  get keptActivations(): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.saved) n++;
    return n;
  }

  /** The range's output for `rows` hidden-state rows of one sequence (positions 0 … rows−1). */
  forward(id: number, x: Vec, rows: number): Vec {
    return finish(this.forwardSteps(id, x, rows));
  }

  /** The gradient of the range's input from its output's; the slice's LoRA gradients added into `grads`. */
  backward(id: number, dOut: Vec): Vec {
    return finish(this.backwardSteps(id, dOut));
  }

  /** forward, letting the event loop turn between layers when a slice has run its length (heartbeats, streams). */
  forwardSliced(id: number, x: Vec, rows: number, slices: ComputeSlices): Promise<Vec> {
    return finishSliced(this.forwardSteps(id, x, rows), slices);
  }

  /** backward, letting the event loop turn between layers as forwardSliced does. The same bits as backward. */
  backwardSliced(id: number, dOut: Vec, slices: ComputeSlices): Promise<Vec> {
    return finishSliced(this.backwardSteps(id, dOut), slices);
  }

  private *forwardSteps(id: number, x: Vec, rows: number): LayerSteps<Vec> {
    if (this.pending.has(id)) throw new MicroBatchError(`micro-batch ${id} is already in flight`);
    if (x.length !== rows * this.m.shape.hidden) throw new MicroBatchError(`micro-batch ${id}: ${x.length} values are not ${rows} rows of ${this.m.shape.hidden}`);
    const keep = this.keeps();
    const { out, saved } = yield* this.run(x, rows, keep);
    this.pending.set(id, { x, rows, saved });
    this.order.push(id);
    return out;
  }

  private *backwardSteps(id: number, dOut: Vec): LayerSteps<Vec> {
    const p = this.pending.get(id);
    if (!p) throw new MicroBatchError(`micro-batch ${id} has not gone forward here (or has come back already)`);
    if (this.order[0] !== id) throw new MicroBatchError(`micro-batch ${id} came back before ${this.order[0]}: backwards must follow the forwards' order`);
    if (dOut.length !== p.x.length) throw new MicroBatchError(`micro-batch ${id}: a gradient of ${dOut.length} values for ${p.rows} rows of ${this.m.shape.hidden}`);
    this.order.shift();
    this.pending.delete(id);
    const saved = p.saved ?? (yield* this.run(p.x, p.rows, true)).saved!;
    const table = positionsTable(this.m, p.rows, p.x);
    let dx = dOut;
    for (let l = this.m.layers.length - 1; l >= 0; l--) {
      dx = layerBackward(this.m, this.m.layers[l], this.lora[l], this.grads[l], saved[l], dx, p.rows, table);
      yield;
    }
    return dx;
  }

  /**
   * `start` plus the sum of the squares of this range's gradients, in the adapter's fixed order: chained over the
   * stages in layer order (each starting from the previous one's sum), it is one device's sum to the bit.
   */
  gradSquareSum(start = 0): number {
    let ss = start;
    for (const g of loraArrays(this.asSet(this.grads))) ss = addSquares(g, ss);
    return ss;
  }

  /** Gradients scaled by `clipScale` (null: as they are), one AdamW update, gradients zeroed for the next step. */
  step(clipScale: number | null, lr?: number): void {
    if (!this.opt) throw new MicroBatchError('this trainer has no optimiser');
    if (this.pending.size > 0) throw new MicroBatchError(`a step with ${this.pending.size} micro-batches still in flight`);
    const arrays = loraArrays(this.asSet(this.grads));
    if (clipScale !== null) for (const g of arrays) scaleInPlace(g, clipScale);
    this.opt.step(this.asSet(this.grads), lr);
    for (const g of arrays) g.fill(0);
  }

  /** Forgets the micro-batches in flight (a step abandoned). */
  reset(): void {
    this.pending.clear();
    this.order.length = 0;
  }

  /** The range's forward, a layer at a time (each `yield` is a point where the event loop may turn). */
  private *run(x: Vec, rows: number, keep: boolean): LayerSteps<{ out: Vec; saved: LayerSaved[] | null }> {
    const table = positionsTable(this.m, rows, x);
    const saved: LayerSaved[] = [];
    let h = x;
    for (let l = 0; l < this.m.layers.length; l++) {
      const f = layerForward(this.m, this.m.layers[l], this.lora[l], h, rows, table);
      if (keep) saved.push(f.saved);
      h = f.out;
      yield;
    }
    return { out: h, saved: keep ? saved : null };
  }

  private asSet(layers: LayerLora[]): LoraSet {
    return { rank: 0, alpha: 0, layers };
  }
}

/** A computation a layer at a time: it yields between layers and returns its result. */
type LayerSteps<T> = Generator<void, T, void>;

/** Runs the steps through at once. */
function finish<T>(steps: LayerSteps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs the steps, letting the event loop turn between two whenever the slice is due (engine/compute-slices.ts). */
async function finishSliced<T>(steps: LayerSteps<T>, slices: ComputeSlices): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    const turn = slices.checkpoint();
    if (turn) await turn;
  }
}
