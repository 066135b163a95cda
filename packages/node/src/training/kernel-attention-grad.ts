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

/** Bytes of a [heads, t, t] block of scores or probabilities placed at once: long sequences go a few heads at a time. */
const HEADS_BLOCK_BYTES = 8 * 2 ** 20;

/**
 * Values of q (and of the output and its gradient) and of k or v, and the heads per kernel call: as many as keep a
 * [heads, t, t] f64 block within HEADS_BLOCK_BYTES, at least one.
 */
function sizesOf(sh: AttentionShape): { qn: number; kvn: number; per: number } {
  const { t, heads, kvHeads, headDim } = sh;
  return { qn: t * heads * headDim, kvn: t * kvHeads * headDim, per: Math.min(heads, Math.max(1, Math.floor(HEADS_BLOCK_BYTES / (t * t * 8)))) };
}

/**
 * attentionForward (attention-grad.ts) of f32 arrays on the kernels: the scores, their softmax and P·V
 * (`attention_scores`, `attention_softmax`, `attention_values`: its sums in its order and its exponential, so its
 * bits); a range of heads at a time, so the arena's blocks stay small whatever the sequence's length.
 */
export function attentionForwardOnKernels(arena: KernelArena, q: Float32Array, k: Float32Array, v: Float32Array, sh: AttentionShape): { out: Float32Array; probs: Float32Array } {
  const { t, heads, kvHeads, headDim } = sh;
  const { qn, kvn, per } = sizesOf(sh);
  const b = new Blocks(arena);
  try {
    const [qP, kP, vP, outP, accP] = [b.place(q, qn), b.place(k, kvn), b.place(v, kvn), b.alloc(qn * 4), b.alloc(headDim * 8)];
    const [scoresP, probsP] = [b.alloc(per * t * t * 8), b.alloc(per * t * t * 4)];
    const probs = new Float32Array(heads * t * t);
    for (let h0 = 0; h0 < heads; h0 += per) {
      const h1 = Math.min(heads, h0 + per);
      arena.kernels.attention_scores(qP, kP, t, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), scoresP, h0, h1);
      arena.kernels.attention_softmax(scoresP, probsP, t, h1 - h0);
      probs.set(arena.f32(probsP, (h1 - h0) * t * t), h0 * t * t);
      arena.kernels.attention_values(probsP, vP, t, heads, kvHeads, headDim, outP, accP, h0, h1);
    }
    return { out: arena.f32(outP, qn).slice(), probs };
  } finally {
    b.release();
  }
}

/**
 * attentionBackward (attention-grad.ts) of f32 arrays on the kernels (`attention_backward`: the same sums in the same
 * order with the same roundings, so the same bits; its loops in TypeScript were 7–19 % of a step), a range of heads
 * at a time in head order. The operands are copied into `arena` and the gradients out of it.
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
  const { qn, kvn, per } = sizesOf(sh);
  const b = new Blocks(arena);
  try {
    const [dOutP, qP, kP, vP] = [b.place(dOut, qn), b.place(q, qn), b.place(k, kvn), b.place(v, kvn)];
    const [dqP, dkP, dvP] = [b.alloc(qn * 4), b.zeros(kvn * 4), b.zeros(kvn * 4)];
    const [probsP, dsP, rowP] = [b.alloc(per * t * t * 4), b.alloc(t * t * 8), b.alloc(headDim * 8)];
    for (let h0 = 0; h0 < heads; h0 += per) {
      const h1 = Math.min(heads, h0 + per);
      arena.f32(probsP, (h1 - h0) * t * t).set(probs.subarray(h0 * t * t, h1 * t * t));
      arena.kernels.attention_backward(dOutP, qP, kP, vP, probsP, t, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), dqP, dkP, dvP, dsP, rowP, h0, h1);
    }
    return { dq: arena.f32(dqP, qn).slice(), dk: arena.f32(dkP, kvn).slice(), dv: arena.f32(dvP, kvn).slice() };
  } finally {
    b.release();
  }
}
