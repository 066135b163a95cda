import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerialKernelRuntime, ThreadedKernelRuntime, type KernelArena, type KernelRuntime } from '../src/index.js';
import { ggmlQuantize, oracleUnavailable } from './support/ggml-oracle.js';
import { rng } from './support/seeded-random.js';

// The Q8_0 KV cache: rows quantised by the quantize_q8_0 op, read by the attention kernel (kvType 2).
const KV_Q8_0 = 2;
const Q8_0 = 8; // ggml type id

/** Rows of varied magnitude, with an all-zero block and a block of exact ties (x/d = k + ½, where roundf and round-to-even differ). */
function kvRows(rows: number, cols: number, rand: () => number): Float32Array {
  const x = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const scale = 0.1 * (1 + (r % 7));
    for (let j = 0; j < cols; j++) x[r * cols + j] = rand() * 2 * scale * (j % 13 === 0 ? 6 : 1);
  }
  x.fill(0, 32, 64);
  // max 127 → d = 1, id = 1: these are exact ties.
  const ties = [127, 2.5, -3.5, 0.5, -0.5, 1.5, 100.5, -126.5];
  ties.forEach((v, j) => (x[64 + j] = v));
  return x;
}

function q8Values(blocks: Uint8Array, n: number): Float64Array {
  const view = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  const out = new Float64Array(n);
  const half = (h: number) => {
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
    return h & 0x8000 ? -v : v;
  };
  for (let j = 0; j < n; j++) {
    const b = Math.floor(j / 32) * 34;
    out[j] = half(view.getUint16(b, true)) * view.getInt8(b + 2 + (j % 32));
  }
  return out;
}

const skip = oracleUnavailable();
if (skip) console.warn(skip);

describe('Q8_0 KV cache kernels', () => {
  let rt: KernelRuntime;
  let two: ThreadedKernelRuntime;
  beforeAll(async () => {
    rt = await SerialKernelRuntime.create();
    two = await ThreadedKernelRuntime.create({ threads: 2, minParallelWork: 0 });
  });
  afterAll(async () => {
    await rt?.close();
    await two?.close();
  });

  it.skipIf(skip !== undefined)("quantize_q8_0 writes ggml's quantize_row_q8_0 blocks bit for bit (ties rounded away from zero)", async () => {
    const rows = 9;
    const cols = 256;
    const x = kvRows(rows, cols, rng(3));
    const { blocks } = ggmlQuantize(Q8_0, cols, x);
    expect(blocks.length).toBe((rows * cols * 34) / 32);
    const arena = await rt.createArena(1 << 20);
    const src = arena.alloc(x.length * 4);
    arena.f32(src, x.length).set(x);
    const dst = arena.alloc(blocks.length);
    arena.kernels.quantize_q8_0(src, dst, rows * cols);
    const ours = arena.bytes(dst, blocks.length);
    let firstDiff = -1;
    for (let j = 0; j < blocks.length && firstDiff < 0; j++) if (ours[j] !== blocks[j]) firstDiff = j;
    expect(firstDiff, firstDiff >= 0 ? `byte ${firstDiff} (block ${Math.floor(firstDiff / 34)}): ours ${ours[firstDiff]}, ggml ${blocks[firstDiff]}` : '').toBe(-1);
    // The tie block: 2.5 → 3, −3.5 → −4, 0.5 → 1, −0.5 → −1 (round-to-even would give 2, −4, 0, 0).
    expect(Array.from(new Int8Array(ours.buffer, ours.byteOffset + 2 * 34 + 2, 8))).toEqual([127, 3, -4, 1, -1, 2, 101, -127]);
  });

  async function run(runtime: KernelRuntime, arena: KernelArena, args: { q: number; k: number; v: number; nPos: number; heads: number; kvHeads: number; headDim: number; out: number; scores: number }, split: 'one' | 'heads' | 'threads'): Promise<Float32Array> {
    const { q, k, v, nPos, heads, kvHeads, headDim, out, scores } = args;
    const a = [KV_Q8_0, q, k, v, nPos, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), out, scores] as const;
    arena.f32(out, heads * headDim).fill(NaN);
    if (split === 'one') arena.kernels.attention(...a, 0, heads);
    else if (split === 'heads') for (let h = 0; h < heads; h++) arena.kernels.attention(...a, h, h + 1);
    else runtime.parallelFor(arena, 'attention', [...a], heads);
    return Float32Array.from(arena.f32(out, heads * headDim));
  }

  it('attention over Q8_0 keys and values is the f64 attention over their values within rounding, the same bits for any split of the heads or threads', async () => {
    const heads = 8;
    const kvHeads = 2;
    const headDim = 64;
    const nPos = 37;
    const kvDim = kvHeads * headDim;
    const rand = rng(11);
    const kx = kvRows(nPos, kvDim, rand);
    const vx = kvRows(nPos, kvDim, rand);
    const qx = Float32Array.from({ length: heads * headDim }, () => rand() * 0.5);
    const rowBytes = (kvDim / 32) * 34;

    const results: Float32Array[] = [];
    for (const [runtime, split] of [[rt, 'one'], [rt, 'heads'], [two, 'threads']] as const) {
      const arena = await runtime.createArena(1 << 20);
      const ptr = (n: number) => arena.alloc(n);
      const kf = ptr(kx.length * 4), vf = ptr(vx.length * 4), q = ptr(qx.length * 4);
      arena.f32(kf, kx.length).set(kx);
      arena.f32(vf, vx.length).set(vx);
      arena.f32(q, qx.length).set(qx);
      const k = ptr(nPos * rowBytes), v = ptr(nPos * rowBytes);
      // Row by row, as the engine appends them.
      for (let t = 0; t < nPos; t++) {
        arena.kernels.quantize_q8_0(kf + t * kvDim * 4, k + t * rowBytes, kvDim);
        arena.kernels.quantize_q8_0(vf + t * kvDim * 4, v + t * rowBytes, kvDim);
      }
      const args = { q, k, v, nPos, heads, kvHeads, headDim, out: ptr(heads * headDim * 4), scores: ptr(heads * nPos * 4) };
      results.push(await run(runtime, arena, args, split));
      if (results.length === 1) {
        // Reference: f64 attention over the values the blocks stand for.
        const kd = q8Values(arena.bytes(k, nPos * rowBytes), nPos * kvDim);
        const vd = q8Values(arena.bytes(v, nPos * rowBytes), nPos * kvDim);
        const got = results[0];
        let worst = 0;
        let maxScore = 0;
        const maxV = Math.max(...vd.map(Math.abs));
        for (let h = 0; h < heads; h++) {
          const g = Math.floor(h / (heads / kvHeads));
          const s = Array.from({ length: nPos }, (_, t) => {
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += qx[h * headDim + d] * kd[t * kvDim + g * headDim + d];
            return dot / Math.sqrt(headDim);
          });
          const mx = Math.max(...s);
          maxScore = Math.max(maxScore, ...s.map(Math.abs));
          const e = s.map((x) => Math.exp(x - mx));
          const sum = e.reduce((a, b) => a + b, 0);
          for (let d = 0; d < headDim; d++) {
            let o = 0;
            for (let t = 0; t < nPos; t++) o += (e[t] / sum) * vd[t * kvDim + g * headDim + d];
            worst = Math.max(worst, Math.abs(got[h * headDim + d] - o));
          }
        }
        // f32 rounding: a score of headDim products is off by ≲ headDim·2⁻²⁴·|score|-ish, which exp turns into that
        // relative error of the weights; the weighted sum of nPos rows adds nPos·2⁻²⁴ relative; outputs are ≤ max|v|.
        const bound = (headDim * (1 + maxScore) + nPos) * 2 ** -24 * maxV;
        expect(worst).toBeLessThan(bound);
        expect(worst).toBeGreaterThan(0); // the reference is not the kernel's own arithmetic
      }
      await runtime.releaseArena(arena);
    }
    expect(Array.from(results[1])).toEqual(Array.from(results[0]));
    expect(Array.from(results[2])).toEqual(Array.from(results[0]));
  });
});
