import { loraArrays, zerosLikeLora, type LoraSet } from './lora-set.js';
import type { Vec } from './vec.js';

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: Omit<AdamWOptions, 'lr'> = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

/** AdamW (decoupled weight decay, bias-corrected moments) over an adapter's arrays, in their fixed order. */
export class AdamW {
  private readonly m: Vec[];
  private readonly v: Vec[];
  private t = 0;

  constructor(
    private readonly params: LoraSet,
    private readonly opts: AdamWOptions,
  ) {
    this.m = loraArrays(zerosLikeLora(params));
    this.v = loraArrays(zerosLikeLora(params));
  }

  get steps(): number {
    return this.t;
  }

  /** The moments (copies, in the parameters' fixed order) and the step count: what a resumed job starts from. */
  exportState(): { t: number; m: Vec[]; v: Vec[] } {
    return { t: this.t, m: this.m.map((x) => x.slice()), v: this.v.map((x) => x.slice()) };
  }

  /** Takes over a state exportState gave (the same shapes). */
  loadState(state: { t: number; m: readonly Vec[]; v: readonly Vec[] }): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) throw new RangeError(`an optimiser state of ${state.m.length} arrays for ${this.m.length}`);
    state.m.forEach((x, i) => this.m[i].set(x));
    state.v.forEach((x, i) => this.v[i].set(x));
    this.t = state.t;
  }

  /** One update of every parameter from `grads` (the same shapes as the parameters); lr may change per step. */
  step(grads: LoraSet, lr = this.opts.lr): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    this.t++;
    const c1 = 1 - Math.pow(beta1, this.t);
    const c2 = 1 - Math.pow(beta2, this.t);
    const ps = loraArrays(this.params);
    const gs = loraArrays(grads);
    for (let k = 0; k < ps.length; k++) update(ps[k], gs[k], this.m[k], this.v[k], beta1, beta2, c1, c2, lr, eps, weightDecay);
  }
}

/**
 * One array's AdamW update. A function of its own, not a loop nested in the step's: V8 then optimises it as a whole
 * (a hot inner loop is compiled alone, and leaving it fell back to the interpreter: the first update after a
 * training step took several times the next one's time).
 */
function update(p: Vec, g: Vec, m: Vec, v: Vec, beta1: number, beta2: number, c1: number, c2: number, lr: number, eps: number, weightDecay: number): void {
  for (let i = 0; i < p.length; i++) {
    m[i] = beta1 * m[i] + (1 - beta1) * g[i];
    v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    p[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + eps) + weightDecay * p[i]);
  }
}

/** Scales the gradients in place so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGlobalNorm(grads: LoraSet, maxNorm: number): number {
  const arrays = loraArrays(grads);
  let ss = 0;
  for (const g of arrays) ss = addSquares(g, ss);
  const norm = Math.sqrt(ss);
  if (norm > maxNorm && norm > 0) {
    const k = maxNorm / norm;
    for (const g of arrays) scaleInPlace(g, k);
  }
  return norm;
}

/** `ss` plus the squares of g in order (the loops over an adapter's arrays call these: see `update`). */
export function addSquares(g: Vec, ss: number): number {
  for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  return ss;
}

/** g[i] *= k. */
export function scaleInPlace(g: Vec, k: number): void {
  for (let i = 0; i < g.length; i++) g[i] *= k;
}
