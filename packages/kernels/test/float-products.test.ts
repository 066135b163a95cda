import { beforeAll, describe, expect, it } from 'vitest';
import { ggmlRowBytes, ggmlTypeByName, SerialKernelRuntime, type KernelRuntime } from '../src/index.js';
import { f64Product } from './support/f64-product.js';
import { rng } from './support/seeded-random.js';

// F32, F16 and BF16 weights on their own: the product widens 16-bit values in vector lanes (quant/float.ts), takes a
// batch four activation rows (and, once a tile is cached, two weight rows) at a time, and ends each row with a scalar
// tail. Values ggml's quantiser never makes are here: subnormal and negative halves, ±0, the largest half, and
// column counts that leave a tail.

/** The value of an IEEE half, exactly. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

/** A mix of halves: normal values of both signs and many magnitudes, subnormals, zeros and the largest finite. */
function halves(n: number, rand: () => number): Uint16Array {
  const specials = [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0200, 0x7bff, 0xfbff, 0x0400, 0x8400];
  return Uint16Array.from({ length: n }, (_, j) => {
    if (j % 7 === 3) return specials[j % specials.length];
    const e = 5 + Math.floor(((rand() + 1) / 2) * 15); // exponents 5..19: 2^-10 … 2^4
    return (rand() < 0 ? 0x8000 : 0) | (e << 10) | Math.floor(((rand() + 1) / 2) * 1023);
  });
}

describe('float weight products', () => {
  let rt: KernelRuntime;
  beforeAll(async () => {
    rt = await SerialKernelRuntime.create();
  });

  for (const name of ['F32', 'F16', 'BF16']) {
    for (const cols of [771, 64]) {
      it(`${name}, ${cols} columns: each output the f64 product within its rounding, the same bits in any batch or row range`, async () => {
        const type = ggmlTypeByName(name)!;
        const rows = 19; // one tile of 16 and 3 over: single, paired and four-row passes all run
        const rand = rng(cols + type.id);
        const rowBytes = ggmlRowBytes(type, cols);
        const arena = await rt.createArena(4 << 20);
        const w = arena.alloc(rows * rowBytes);
        const values = new Float64Array(rows * cols);
        if (name === 'F32') {
          const f = arena.f32(w, rows * cols);
          for (let j = 0; j < f.length; j++) f[j] = rand() * 2 ** Math.floor(((rand() + 1) / 2) * 8 - 4);
          values.set(f);
        } else {
          const h = halves(rows * cols, rand);
          // BF16 is the top half of an f32: the same bit patterns stand for other values, all of them normal here.
          const bits = name === 'F16' ? h : h.map((x) => (x & 0x807f) | (((x >> 10) & 31) + 112) << 7);
          new Uint16Array(arena.memory.buffer, w, rows * cols).set(bits);
          bits.forEach((x, j) => (values[j] = name === 'F16' ? halfValue(x) : new Float32Array(new Uint32Array([x << 16]).buffer)[0]));
        }
        const nAct = 10;
        const x = arena.alloc(nAct * cols * 4);
        const xs = Float32Array.from({ length: nAct * cols }, () => rand());
        arena.f32(x, nAct * cols).set(xs);
        const out = arena.alloc(nAct * rows * 4);
        rt.matmul({ arena, type, rows, cols, ptr: w, rowBytes }, x, cols * 4, nAct, out, rows);
        const got = Float32Array.from(arena.f32(out, nAct * rows));

        // Lane sums of products, then the scalar tail: each product and addition rounds once, ≤ cols/4 + 4 of them
        // stand in one output's path.
        for (let i = 0; i < nAct; i++) {
          for (let r = 0; r < rows; r++) {
            const ref = f64Product(values, xs, cols, r, i);
            expect(Math.abs(got[i * rows + r] - ref.value), `row ${r}, activation ${i}`).toBeLessThanOrEqual((cols / 4 + 5) * 2 ** -23 * ref.magnitude);
          }
        }

        const part = arena.alloc(nAct * rows * 4);
        const gotBits = new Uint32Array(got.buffer);
        for (const [r0, r1, i0, n] of [[0, rows, 0, 1], [0, rows, 3, 4], [1, 18, 0, 9], [5, 6, 2, 5], [0, rows, 1, 7], [2, 17, 0, 10], [15, 19, 4, 3]]) {
          arena.kernels.matmul(type.id, w, cols, r0, r1, x + i0 * cols * 4, cols * 4, n, part, rows);
          for (let i = 0; i < n; i++) {
            const p = new Uint32Array(arena.memory.buffer, part + (i * rows + r0) * 4, r1 - r0);
            expect(Array.from(p), `rows [${r0}, ${r1}), activation ${i0 + i} of a batch of ${n}`).toEqual(Array.from(gotBits.subarray((i0 + i) * rows + r0, (i0 + i) * rows + r1)));
          }
        }
      });
    }
  }
});
