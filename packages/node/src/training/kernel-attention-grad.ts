import type { KernelArena } from '@edge-node/kernels';
import type { AttentionShape } from './attention-grad.js';

/** Blocks of an arena handed out by one call, released together. */
class Blocks {
  private readonly ptrs: number[] = [];
  constructor(private readonly arena: KernelArena) {}

  place(x: Float32Array, n: number): number {
    const ptr = this.alloc(n * 4);
    this.arena.f32(ptr, n).set(x.subarray(0, n));
    return ptr;
  }

  zeros(bytes: number): number {
    const ptr = this.alloc(bytes);
    this.arena.bytes(ptr, bytes).fill(0);
    return ptr;
  }

  /** A block not cleared (what the kernel writes in full before reading). */
  alloc(bytes: number): number {
    const ptr = this.arena.alloc(bytes);
    this.ptrs.push(ptr);
    return ptr;
  }

  release(): void {
    for (const ptr of this.ptrs.reverse()) this.arena.release(ptr);
  }
}

/**
 * attentionForward (attention-grad.ts) of f32 arrays: the scores and P·V on the kernels (`attention_scores`,
 * `attention_values`: its sums in its order, so its bits), the softmax between them here, as there (Math.exp).
 */
export function attentionForwardOnKernels(arena: KernelArena, q: Float32Array, k: Float32Array, v: Float32Array, sh: AttentionShape): { out: Float32Array; probs: Float32Array } {
  const { t, heads, kvHeads, headDim } = sh;
  const qn = t * heads * headDim;
  const kvn = t * kvHeads * headDim;
  const b = new Blocks(arena);
  try {
    const scoresP = b.alloc(heads * t * t * 8);
    arena.kernels.attention_scores(b.place(q, qn), b.place(k, kvn), t, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), scoresP);
    const scores = new Float64Array(arena.bytes(scoresP, 8).buffer, scoresP, heads * t * t);
    const probs = new Float32Array(heads * t * t);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < t; i++) {
        const po = (h * t + i) * t;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) if (scores[po + j] > max) max = scores[po + j];
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          const e = Math.exp(scores[po + j] - max);
          scores[po + j] = e;
          sum += e;
        }
        for (let j = 0; j <= i; j++) probs[po + j] = scores[po + j] / sum;
      }
    }
    const outP = b.alloc(qn * 4);
    arena.kernels.attention_values(b.place(probs, heads * t * t), b.place(v, kvn), t, heads, kvHeads, headDim, outP, b.alloc(headDim * 8));
    return { out: arena.f32(outP, qn).slice(), probs };
  } finally {
    b.release();
  }
}

/**
 * attentionBackward (attention-grad.ts) of f32 arrays on the kernels (`attention_backward`: the same sums in the same
 * order with the same roundings, so the same bits; its loops in TypeScript were 7–19 % of a step). The operands are
 * copied into `arena` and the gradients out of it.
 */
export function attentionBackwardOnKernels(
  arena: KernelArena,
  dOut: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  probs: Float32Array,
  sh: AttentionShape,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const { t, heads, kvHeads, headDim } = sh;
  const qn = t * heads * headDim;
  const kvn = t * kvHeads * headDim;
  const b = new Blocks(arena);
  try {
    const [dOutP, qP, kP, vP, pP] = [b.place(dOut, qn), b.place(q, qn), b.place(k, kvn), b.place(v, kvn), b.place(probs, heads * t * t)];
    const [dqP, dkP, dvP] = [b.alloc(qn * 4), b.zeros(kvn * 4), b.zeros(kvn * 4)];
    arena.kernels.attention_backward(dOutP, qP, kP, vP, pP, t, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), dqP, dkP, dvP, b.alloc(t * t * 8), b.alloc(headDim * 8));
    return { dq: arena.f32(dqP, qn).slice(), dk: arena.f32(dkP, kvn).slice(), dv: arena.f32(dvP, kvn).slice() };
  } finally {
    b.release();
  }
}
