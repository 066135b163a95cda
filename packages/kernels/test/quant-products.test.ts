import { beforeAll, describe, expect, it } from 'vitest';
import { ggmlRowBytes, ggmlTypeByName, SerialKernelRuntime, UnsupportedKernelTypeError, type KernelArena, type KernelRuntime, type WeightMatrix } from '../src/index.js';
import { ggmlQuantize, oracleUnavailable } from './support/ggml-oracle.js';
import { rng } from './support/seeded-random.js';

// Every weight type the kernels multiply, checked against ggml itself (its quantiser makes the blocks, its to_float
// is the reference dequantisation).
const TYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];

// Activation layouts (assembly/activation.ts): the values a prepared row stands for, d·q per block. The relaxed build
// keeps the same q as int8, each 16 in lane order (values 2k, 2k+1, 8+2k, 9+2k at bytes 4k..4k+3): Q8_KS and Q8_1S;
// Q8_KN is Q8_KS with q in natural order, Q8_KP Q8_KN with sums of 32 (sub-blocks 0, 4, 1, 5, 2, 6, 3, 7) where Q8_KN
// has sums of 16; Q8_LS is Q8 with int8 q in lane order after four i32 lane sums a block.
// (Format 4, Q8S, is retired: Q8_0 takes Q8 in both builds.)
const ACT_F32 = 0, ACT_Q8 = 1, ACT_Q8_1 = 2, ACT_Q8_K = 3, ACT_Q8_KS = 5, ACT_Q8_1S = 6, ACT_Q8_KN = 7, ACT_Q8_LS = 8, ACT_Q8_KP = 9;
const lanePos = (e: number) => (((e & 7) >> 1) << 2) | ((e >> 3) << 1) | (e & 1);
function quants(arena: KernelArena, fmt: number, ptr: number, cols: number): Int16Array {
  if (fmt === ACT_Q8 || fmt === ACT_Q8_1 || fmt === ACT_Q8_K) {
    const nb = fmt === ACT_Q8_K ? cols / 256 : cols / 32;
    return new Int16Array(arena.memory.buffer, ptr + (fmt === ACT_Q8 ? nb * 4 : fmt === ACT_Q8_1 ? nb * 8 : nb * 36), cols);
  }
  const q = new Int16Array(cols);
  expect([ACT_Q8_KS, ACT_Q8_1S, ACT_Q8_KN, ACT_Q8_LS, ACT_Q8_KP]).toContain(fmt);
  const qOffset = fmt === ACT_Q8_1S ? (cols / 32) * 8 : fmt === ACT_Q8_LS ? (cols / 32) * 20 : (cols / 256) * 36;
  const bytes = new Int8Array(arena.memory.buffer, ptr + qOffset, cols);
  for (let j = 0; j < cols; j++) q[j] = fmt === ACT_Q8_KN || fmt === ACT_Q8_KP ? bytes[j] : bytes[(j & ~15) + lanePos(j & 15)];
  return q;
}
function preparedValues(arena: KernelArena, fmt: number, ptr: number, x: Float32Array, cols: number): Float64Array {
  const out = new Float64Array(cols);
  if (fmt === ACT_F32) {
    out.set(x);
    return out;
  }
  const superBlocks = fmt === ACT_Q8_K || fmt === ACT_Q8_KS || fmt === ACT_Q8_KN || fmt === ACT_Q8_KP;
  const block = superBlocks ? 256 : 32;
  const nb = cols / block;
  const d = arena.f32(ptr, nb);
  const q = quants(arena, fmt, ptr, cols);
  for (let j = 0; j < cols; j++) out[j] = d[Math.floor(j / block)] * q[j];
  if (fmt === ACT_Q8_KN || fmt === ACT_Q8_KP) {
    // The run-pair copy after the row (activation.ts): in each 64 values, runs at o and o + 32 (o = 0, 16) crossed
    // by groups of four — o+0..3, o+8..11, o+32..35, o+40..43, then o+4..7, o+12..15, o+36..39, o+44..47.
    const copy = new Int8Array(arena.memory.buffer, ptr + nb * 292, cols);
    const from = [0, 8, 32, 40, 4, 12, 36, 44];
    for (let j = 0; j < cols; j++) {
      const c = j & ~63, o = (j & 32) >> 1, k = (j & 31) >> 2;
      expect(copy[j], `value ${j}`).toBe(q[c + o + from[k] + (j & 3)]);
    }
  }
  if (fmt === ACT_Q8_KP) {
    const sums = new Int16Array(arena.memory.buffer, ptr + nb * 4, nb * 16);
    for (let b = 0; b < nb; b++) {
      [0, 4, 1, 5, 2, 6, 3, 7].forEach((sub, k) => {
        let s = 0;
        for (let j = 0; j < 32; j++) s += q[b * 256 + sub * 32 + j];
        expect(sums[b * 16 + k], `block ${b}, sub-block ${sub}`).toBe(s);
      });
    }
  } else if (superBlocks) {
    const sums = new Int16Array(arena.memory.buffer, ptr + nb * 4, nb * 16);
    for (let k = 0; k < nb * 16; k++) {
      let s = 0;
      for (let j = 0; j < 16; j++) s += q[k * 16 + j];
      expect(sums[k]).toBe(s);
    }
  }
  if (fmt === ACT_Q8_LS) {
    // Lane k of a block sums the values the relaxed dot adds into lane k: 2k, 2k+1, 8+2k, 9+2k of each 16.
    const lanes = new Int32Array(arena.memory.buffer, ptr + nb * 4, nb * 4);
    for (let b = 0; b < nb; b++) {
      for (let k = 0; k < 4; k++) {
        let sum = 0;
        for (const g of [0, 16]) for (const v of [2 * k, 2 * k + 1, 8 + 2 * k, 9 + 2 * k]) sum += q[b * 32 + g + v];
        expect(lanes[b * 4 + k], `block ${b}, lane ${k}`).toBe(sum);
      }
    }
  }
  if (fmt === ACT_Q8_1 || fmt === ACT_Q8_1S) {
    // s = (max|x|/127)·Σq, kept in half precision as ggml's block_q8_1.s: within half an f16 ulp of the exact value.
    const s = arena.f32(ptr + nb * 4, nb);
    for (let b = 0; b < nb; b++) {
      let sum = 0;
      let amax = 0;
      for (let j = 0; j < 32; j++) {
        sum += q[b * 32 + j];
        amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      }
      const exact = Math.fround(Math.fround(amax / 127) * sum);
      expect(Math.abs(s[b] - exact)).toBeLessThanOrEqual(Math.abs(exact) * 2 ** -11 + 2 ** -25);
    }
  }
  return out;
}

const skip = oracleUnavailable();
if (skip) console.warn(skip);

describe.skipIf(skip !== undefined)('quantised products against ggml', () => {
  let rt: KernelRuntime;
  beforeAll(async () => {
    rt = await SerialKernelRuntime.create();
  });

  for (const name of TYPES) {
    it(`${name}: ggml's blocks dequantise bit for bit, the product is the f64 one within rounding, any batch gives the same bits`, async () => {
      const type = ggmlTypeByName(name)!;
      // 13 rows: not a multiple of any row unroll. 768 columns: three K-quant super-blocks, 24 small blocks.
      const rows = 13;
      const cols = 768;
      const rand = rng(type.id + 1);
      // Rows of different magnitudes, some with an offset, some sparse: the scales, minimums and sign handling vary.
      const wf = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        const scale = 0.02 * (1 + (r % 5));
        const offset = r % 3 === 1 ? 0.3 * scale : 0;
        for (let j = 0; j < cols; j++) wf[r * cols + j] = r % 4 === 3 && j % 7 !== 0 ? 0 : (rand() * 2 + offset) * scale;
      }
      const { blocks, dequantized } = ggmlQuantize(type.id, cols, wf);
      const rowBytes = ggmlRowBytes(type, cols);
      expect(blocks.length).toBe(rowBytes * rows);

      const arena = await rt.createArena(4 << 20);
      const w: WeightMatrix = { arena, type, rows, cols, ptr: arena.alloc(blocks.length), rowBytes };
      arena.bytes(w.ptr, blocks.length).set(blocks);

      const deq = arena.alloc(rows * cols * 4);
      arena.kernels.dequant(type.id, w.ptr, deq, rows * cols);
      const ours = new Uint32Array(arena.memory.buffer, deq, rows * cols);
      const theirs = new Uint32Array(dequantized.buffer);
      let firstDiff = -1;
      for (let j = 0; j < rows * cols && firstDiff < 0; j++) if (ours[j] !== theirs[j]) firstDiff = j;
      expect(firstDiff, firstDiff >= 0 ? `value ${firstDiff}: ours ${arena.f32(deq, rows * cols)[firstDiff]}, ggml ${dequantized[firstDiff]}` : '').toBe(-1);

      const nAct = 19; // two groups of eight (the relaxed build's widest) and three rows over
      const x = arena.alloc(nAct * cols * 4);
      const xs = Float32Array.from({ length: nAct * cols }, (_, j) => rand() * (1 + (j % 11 === 0 ? 4 : 0)));
      arena.f32(x, nAct * cols).set(xs);
      const fmt = rt.actFormat(type);
      let act = x;
      let actBytes = cols * 4;
      if (fmt !== ACT_F32) {
        actBytes = arena.kernels.act_row_bytes(fmt, cols);
        act = arena.alloc(nAct * actBytes);
        arena.kernels.prepare_act(fmt, x, nAct, cols, act);
      }
      const out = arena.alloc(nAct * rows * 4);
      rt.matmul(w, act, actBytes, nAct, out, rows);
      const got = Float32Array.from(arena.f32(out, nAct * rows));

      // Reference: f64 product of ggml's dequantised weights with the values the prepared activations stand for.
      // The integer block sums are exact; each block contributes one or two f32 products (≤ 3 roundings each) and the
      // ≤ nb + 2 additions of the reduction add one rounding each, so |error| ≤ (nb + 8)·2⁻²⁴·Σ|terms|. A term is
      // bounded by |w|·|a| plus, for types with a per-block minimum, the minimum's part, itself ≤ the block's max |w|
      // (ggml never lets a minimum exceed the block's range by more than its own rounding): Σ|a|·(|w| + 2·max|w|).
      const block = type.blockSize;
      const nb = cols / Math.max(block, 32) + 8;
      // Q8_1 activations keep Σ in half precision (as ggml): the minimum's part of a block carries up to 2⁻¹¹ more.
      const sumRounding = fmt === ACT_Q8_1 || fmt === ACT_Q8_1S ? 2 ** -11 : 0;
      for (let i = 0; i < nAct; i++) {
        const a = preparedValues(arena, fmt, act + i * actBytes, xs.subarray(i * cols, (i + 1) * cols), cols);
        for (let r = 0; r < rows; r++) {
          let ref = 0;
          let mag = 0;
          for (let b0 = 0; b0 < cols; b0 += Math.max(block, 32)) {
            let m = 0;
            for (let j = b0; j < b0 + Math.max(block, 32); j++) m = Math.max(m, Math.abs(dequantized[r * cols + j]));
            for (let j = b0; j < b0 + Math.max(block, 32); j++) {
              const wv = dequantized[r * cols + j];
              ref += wv * a[j];
              mag += Math.abs(a[j]) * (Math.abs(wv) + 2 * m);
            }
          }
          const err = Math.abs(got[i * rows + r] - ref);
          expect(err, `row ${r}, activation ${i}: ${got[i * rows + r]} vs ${ref}`).toBeLessThanOrEqual((nb * 2 ** -24 + sumRounding) * mag + 1e-30);
        }
      }

      // Batch invariance: one activation row alone, sub-batches (3 rows go through the four-row product with a row
      // repeated; 8 and more through the relaxed build's eight-row one, then the rest), and sub-ranges of weight rows
      // give the same bits.
      const part = arena.alloc(nAct * rows * 4);
      const bits = (p: number, n: number) => Array.from(new Uint32Array(arena.memory.buffer, p, n));
      const gotBits = Array.from(new Uint32Array(got.buffer));
      for (const [r0, r1, i0, n] of [[0, rows, 3, 1], [0, rows, 1, 4], [5, 11, 2, 1], [1, 13, 0, 5], [7, 8, 5, 1], [0, 3, 0, 6], [0, rows, 1, 2], [2, 9, 3, 3], [0, rows, 0, 3], [0, rows, 3, 8], [4, 13, 1, 9], [0, rows, 2, 15], [3, 12, 0, 17], [0, rows, 0, 18]]) {
        arena.f32(part, nAct * rows).fill(Number.NaN);
        arena.kernels.matmul(type.id, w.ptr, cols, r0, r1, act + i0 * actBytes, actBytes, n, part, rows);
        for (let i = 0; i < n; i++) {
          expect(bits(part + (i * rows + r0) * 4, r1 - r0), `rows [${r0}, ${r1}), activation ${i0 + i} of a batch of ${n}`).toEqual(
            gotBits.slice((i0 + i) * rows + r0, (i0 + i) * rows + r1),
          );
        }
        // Nothing written outside the batch's rows (a padded group must not spill into the slots after it).
        expect(Array.from(arena.f32(part + n * rows * 4, (nAct - n) * rows)).every(Number.isNaN), `outputs past a batch of ${n}`).toBe(true);
      }
    });
  }

});

describe('unsupported weight types', () => {
  it('are refused with an error naming the type', async () => {
    const rt = await SerialKernelRuntime.create();
    for (const name of ['IQ4_NL', 'IQ2_XXS', 'TQ1_0', 'MXFP4', 'Q8_1', 'Q8_K']) {
      expect(() => rt.actFormat(ggmlTypeByName(name)!)).toThrow(UnsupportedKernelTypeError);
      expect(() => rt.actFormat(ggmlTypeByName(name)!)).toThrow(name);
    }
  });
});
