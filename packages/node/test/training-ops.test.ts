import { describe, expect, it } from 'vitest';
import { attentionBackward, attentionForward } from '../src/training/attention-grad.js';
import { chunkedCrossEntropy } from '../src/training/cross-entropy.js';
import { createKernelRuntime } from '@edge-node/kernels';
import { JS_GEMM, transpose } from '../src/training/gemm.js';
import { KernelGemm } from '../src/training/kernel-gemm.js';
import { linearBackward, linearForward } from '../src/training/linear-grad.js';
import { loraBackward, loraForward } from '../src/training/lora-linear.js';
import { rmsNormBackward, rmsNormForward } from '../src/training/rms-norm-grad.js';
import { ropeApply, ropeTable, type RopePairs } from '../src/training/rope-grad.js';
import { swigluBackward, swigluForward } from '../src/training/swiglu-grad.js';
import type { Vec } from '../src/training/vec.js';
import { dot, finiteDifferences, randomF64, relativeError, seeded } from './support/gradient-check.js';

type Inputs = Record<string, Float64Array>;
/** An op under test: its output for inputs of either precision, and the gradients of Σ y·dy with respect to them. */
type Op = (inputs: Record<string, Vec>, dy: Vec | null) => { y: Vec; grads: { [name: string]: Vec | undefined } };

function toF32(inputs: Inputs): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, Float32Array.from(v)]));
}

/**
 * The op's f32 gradients against its float64 gradients (the reference), and those against central differences of the
 * float64 forward: both within 1e-4 relative, the bound.
 */
function checkOp(op: Op, inputs: Inputs, wrt: readonly string[], seed: number): { f32VsF64: number; f64VsFd: number } {
  const rand = seeded(seed);
  const y0 = op(inputs, null).y;
  const dy = randomF64(y0.length, rand);
  const ref = op(inputs, dy).grads;
  const f32 = op(toF32(inputs), Float32Array.from(dy)).grads;
  let f32VsF64 = 0;
  let f64VsFd = 0;
  for (const name of wrt) {
    const fd = finiteDifferences(inputs[name], () => dot(op(inputs, null).y, dy));
    f64VsFd = Math.max(f64VsFd, relativeError(ref[name]!, fd));
    f32VsF64 = Math.max(f32VsF64, relativeError(f32[name]!, ref[name]!));
    expect(f32[name]).toBeInstanceOf(Float32Array);
  }
  expect(f64VsFd).toBeLessThan(1e-4);
  expect(f32VsF64).toBeLessThan(1e-4);
  return { f32VsF64, f64VsFd };
}

describe('training ops: gradients against float64 and finite differences', () => {
  const rand = seeded(7);

  it('RMSNorm', () => {
    const rows = 3, dim = 16;
    const op: Op = ({ x, w }, dy) => {
      const { y, r } = rmsNormForward(x, rows, dim, w, 1e-5);
      return { y, grads: dy ? { x: rmsNormBackward(dy, x, r, rows, dim, w) } : {} };
    };
    checkOp(op, { x: randomF64(rows * dim, rand), w: randomF64(dim, rand) }, ['x'], 1);
  });

  for (const pairs of ['interleaved', 'half'] as RopePairs[]) {
    it(`RoPE (${pairs} pairs) is a rotation: backward rotates back`, () => {
      const rows = 4, heads = 2, headDim = 8, stride = heads * headDim + 4;
      const freqs = Float64Array.from({ length: headDim / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / headDim));
      const op: Op = ({ x }, dy) => {
        const table = ropeTable([0, 1, 5, 9], freqs, x);
        const y = x.slice();
        ropeApply(y, { rows, stride, heads, headDim, pairs }, table);
        if (!dy) return { y, grads: {} };
        const dx = dy.slice();
        ropeApply(dx, { rows, stride, heads, headDim, pairs }, table, true);
        return { y, grads: { x: dx } };
      };
      checkOp(op, { x: randomF64(rows * stride, rand) }, ['x'], 2);
    });
  }

  it('causal attention with grouped KV heads (4 query heads over 2 KV heads)', () => {
    const sh = { t: 5, heads: 4, kvHeads: 2, headDim: 8 };
    const op: Op = ({ q, k, v }, dy) => {
      const { out, probs } = attentionForward(q, k, v, sh);
      if (!dy) return { y: out, grads: {} };
      const g = attentionBackward(dy, q, k, v, probs, sh);
      return { y: out, grads: { q: g.dq, k: g.dk, v: g.dv } };
    };
    const r = checkOp(op, { q: randomF64(5 * 32, rand), k: randomF64(5 * 16, rand), v: randomF64(5 * 16, rand) }, ['q', 'k', 'v'], 3);
    expect(r.f64VsFd).toBeLessThan(1e-6);
  });

  it('attention is causal: a later row changes no earlier output', () => {
    const sh = { t: 4, heads: 2, kvHeads: 1, headDim: 4 };
    const q = randomF64(4 * 8, rand), k = randomF64(4 * 4, rand), v = randomF64(4 * 4, rand);
    const before = attentionForward(q, k, v, sh).out.slice(0, 3 * 8);
    k[3 * 4] += 1;
    v[3 * 4 + 1] += 1;
    expect(attentionForward(q, k, v, sh).out.slice(0, 3 * 8)).toEqual(before);
  });

  it('SwiGLU', () => {
    const op: Op = ({ g, u }, dy) => {
      const { out: y, den } = swigluForward(g, u);
      if (!dy) return { y, grads: {} };
      const { dg, du } = swigluBackward(dy, g, u, den);
      return { y, grads: { g: dg, u: du } };
    };
    checkOp(op, { g: randomF64(40, rand, 3), u: randomF64(40, rand) }, ['g', 'u'], 4);
  });

  it('linear through a frozen matrix: input gradient', () => {
    const rows = 3, out = 6, inDim = 10;
    const op: Op = ({ x, w }, dy) => {
      const frozen = JS_GEMM.frozen(w, out, inDim);
      const y = linearForward(x, rows, frozen);
      return { y, grads: dy ? { x: linearBackward(dy, rows, frozen) } : {} };
    };
    checkOp(op, { x: randomF64(rows * inDim, rand), w: randomF64(out * inDim, rand) }, ['x'], 5);
  });

  it('LoRA linear: gradients of x, A and B', () => {
    const rows = 3, out = 6, inDim = 10, rank = 2;
    const op: Op = ({ x, w, a, b }, dy) => {
      const p = { a, b, rank, inDim, outDim: out, scale: 1.5 };
      const frozen = JS_GEMM.frozen(w, out, inDim);
      const { y, saved } = loraForward(x, rows, frozen, p);
      if (!dy) return { y, grads: {} };
      const dA = new (a.constructor as Float64ArrayConstructor)(a.length);
      const dB = new (b.constructor as Float64ArrayConstructor)(b.length);
      const dx = loraBackward(dy, saved, frozen, p, dA, dB);
      return { y, grads: { x: dx, a: dA, b: dB } };
    };
    checkOp(op, { x: randomF64(rows * inDim, rand), w: randomF64(out * inDim, rand), a: randomF64(rank * inDim, rand), b: randomF64(out * rank, rand) }, ['x', 'a', 'b'], 6);
  });

  it('chunked cross-entropy with a loss mask: the chunk size changes nothing, masked rows give nothing', () => {
    const rows = 7, dim = 8, vocab = 11;
    const targets = Int32Array.from({ length: rows }, (_, i) => (i * 5) % vocab);
    const mask = [false, false, true, true, false, true, true];
    const head = randomF64(vocab * dim, rand);
    const h = randomF64(rows * dim, rand);
    const scale = 1 / 4;
    const loss = (x: Vec, chunk: number) => chunkedCrossEntropy(x, rows, JS_GEMM.frozen(head, vocab, dim), targets, mask, scale, JS_GEMM, chunk);
    const whole = loss(h, 64);
    const chunked = loss(h, 3);
    expect(chunked.lossSum).toBe(whole.lossSum);
    expect(Array.from(chunked.dh)).toEqual(Array.from(whole.dh));
    for (const r of [0, 1, 4]) expect(Array.from(whole.dh.subarray(r * dim, (r + 1) * dim)).every((v) => v === 0)).toBe(true);
    const fd = finiteDifferences(h, () => loss(h, 3).lossSum * scale);
    expect(relativeError(whole.dh, fd)).toBeLessThan(1e-6);
    const f32 = chunkedCrossEntropy(Float32Array.from(h), rows, JS_GEMM.frozen(Float32Array.from(head), vocab, dim), targets, mask, scale, JS_GEMM, 3);
    expect(relativeError(f32.dh, whole.dh)).toBeLessThan(1e-4);
  });

  it('the kernels\' f32 product gives the loops\' product (other reduction order: within 1e-6), and float64 stays on the loops', async () => {
    const runtime = await createKernelRuntime({ threads: 1 });
    try {
      const g = await KernelGemm.create(runtime);
      const m = 5, k = 37, n = 19;
      const a = randomF64(m * k, rand), b = randomF64(n * k, rand);
      const ref = JS_GEMM.nt(a, m, k, b, n);
      const mine = g.nt(Float32Array.from(a), m, k, Float32Array.from(b), n);
      expect(mine).toBeInstanceOf(Float32Array);
      expect(relativeError(mine, ref)).toBeLessThan(1e-6);
      expect(Array.from(g.nt(a, m, k, b, n))).toEqual(Array.from(ref));
      // A row's result does not depend on the rows beside it.
      expect(Array.from(g.nt(Float32Array.from(a.subarray(2 * k, 3 * k)), 1, k, Float32Array.from(b), n))).toEqual(Array.from(mine.subarray(2 * n, 3 * n)));
      // ntAdd, operands given transposed: nt's bits on transposed copies, added (or set) scaled.
      const aT = transpose(Float32Array.from(a), m, k) as Float32Array, bT = transpose(Float32Array.from(b), n, k) as Float32Array;
      const acc = Float32Array.from(randomF64(m * n, rand));
      const want = acc.map((v, i) => v + 0.5 * mine[i]);
      g.ntAdd(aT, m, k, bT, n, acc, 0.5, { aT: true, bT: true });
      expect(Array.from(acc)).toEqual(Array.from(want));
      g.ntAdd(Float32Array.from(a), m, k, bT, n, acc, 3, { bT: true, set: true });
      expect(Array.from(acc)).toEqual(Array.from(mine.map((v) => 3 * v)));
      // Shared operands (q, k, v's A·x; their dA against one xᵀ): each result the bits of nt and ntAdd alone.
      const b2 = Float32Array.from(randomF64(7 * k, rand));
      const [s1, s2] = g.ntShared(Float32Array.from(a), m, k, [Float32Array.from(b), b2], [n, 7]);
      expect(Array.from(s1)).toEqual(Array.from(mine));
      expect(Array.from(s2)).toEqual(Array.from(g.nt(Float32Array.from(a), m, k, b2, 7)));
      const a2T = Float32Array.from(randomF64(k * 3, rand));
      const accs = [Float32Array.from(randomF64(m * n, rand)), Float32Array.from(randomF64(3 * n, rand))];
      const wants = accs.map((x) => x.slice());
      g.ntAdd(aT, m, k, bT, n, wants[0], 0.25, { aT: true, bT: true });
      g.ntAdd(a2T, 3, k, bT, n, wants[1], 0.25, { aT: true, bT: true });
      g.ntAddShared([aT, a2T], [m, 3], k, bT, n, accs, 0.25, { aT: true, bT: true });
      expect(accs.map((x) => Array.from(x))).toEqual(wants.map((x) => Array.from(x)));
      // A frozen matrix held in the arena: both directions against the loops.
      const w = g.frozen(Float32Array.from(b), n, k);
      expect(Array.from(w.forward(Float32Array.from(a), m))).toEqual(Array.from(mine));
      const dy = randomF64(m * n, rand);
      expect(relativeError(w.backward(Float32Array.from(dy), m), JS_GEMM.frozen(b, n, k).backward(dy, m))).toBeLessThan(1e-6);
      await g.close();
    } finally {
      await runtime.close();
    }
  });

  it("the kernels' SwiGLU and the cross-entropy's exponentials give the loops' bits on f32 arrays, and float64 stays on the loops", async () => {
    const runtime = await createKernelRuntime({ threads: 1 });
    try {
      const g = await KernelGemm.create(runtime);
      for (const n of [1, 6, 1537]) {
        const gate = Float32Array.from(randomF64(n, rand).map((x) => x * 12));
        const up = Float32Array.from(randomF64(n, rand));
        const mine = g.swigluForward(gate, up), loops = JS_GEMM.swigluForward(gate, up);
        expect(mine.out).toBeInstanceOf(Float32Array);
        expect(Array.from(mine.out)).toEqual(Array.from(loops.out));
        expect(Array.from(mine.den)).toEqual(Array.from(loops.den));
        const logits = Float32Array.from(randomF64(n + 3, rand).map((x) => x * 20));
        const [a, b] = [logits.slice(), logits.slice()];
        const max = Math.max(...logits.subarray(2, 2 + n));
        expect(g.expShifted(a, 2, n, max)).toBe(JS_GEMM.expShifted(b, 2, n, max));
        expect(Array.from(a)).toEqual(Array.from(b));
        expect(a[0]).toBe(logits[0]);
      }
      const gate64 = randomF64(9, rand), up64 = randomF64(9, rand);
      expect(g.swigluForward(gate64, up64).out).toBeInstanceOf(Float64Array);
      await g.close();
    } finally {
      await runtime.close();
    }
  });
});
