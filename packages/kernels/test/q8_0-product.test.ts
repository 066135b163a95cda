import { beforeAll, describe, expect, it } from 'vitest';
import { ggmlTypeByName, SerialKernelRuntime, type KernelRuntime, type WeightMatrix } from '../src/index.js';
import { rng } from './support/seeded-random.js';
import { f64Product } from './support/f64-product.js';

// A reference Q8_0 encoder (ggml's quantize_row_q8_0_ref): d = max|x|/127 as f16, q = round(x/d).
function f32ToF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0];
  const sign = (b >>> 16) & 0x8000;
  let e = ((b >>> 23) & 0xff) - 127 + 15;
  const m = b & 0x7fffff;
  if (e <= 0) return sign; // tiny scales do not occur here
  let h = sign | (e << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return h;
}
function f16BitsToF32(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}
function encodeQ8_0(x: Float32Array): { bytes: Uint8Array; values: Float64Array } {
  const nb = x.length / 32;
  const bytes = new Uint8Array(nb * 34);
  const values = new Float64Array(x.length);
  const view = new DataView(bytes.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const dBits = f32ToF16Bits(amax / 127);
    const d = f16BitsToF32(dBits);
    view.setUint16(b * 34, dBits, true);
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : Math.round(x[b * 32 + j] / d) | 0;
      view.setInt8(b * 34 + 2 + j, q);
      values[b * 32 + j] = d * q;
    }
  }
  return { bytes, values };
}

describe('Q8_0 kernels', () => {
  let rt: KernelRuntime;
  beforeAll(async () => {
    rt = await SerialKernelRuntime.create();
  });

  it('dequantises blocks exactly and multiplies within the activation rounding, the same for every batch', async () => {
    const rows = 13;
    const cols = 96;
    const rand = rng(7);
    const wf = Float32Array.from({ length: rows * cols }, () => rand());
    const { bytes, values } = encodeQ8_0(wf);
    const arena = await rt.createArena(1 << 20);
    const type = ggmlTypeByName('Q8_0')!;
    const w: WeightMatrix = { arena, type, rows, cols, ptr: arena.alloc(bytes.length), rowBytes: (cols / 32) * 34 };
    arena.bytes(w.ptr, bytes.length).set(bytes);

    const deq = arena.alloc(rows * cols * 4);
    arena.kernels.dequant(type.id, w.ptr, deq, rows * cols);
    expect(Array.from(arena.f32(deq, rows * cols))).toEqual(Array.from(values, (v) => Math.fround(v)));

    const nAct = 5;
    const x = arena.alloc(nAct * cols * 4);
    arena.f32(x, nAct * cols).set(Float32Array.from({ length: nAct * cols }, () => rand()));
    const fmt = rt.actFormat(type);
    const actBytes = arena.kernels.act_row_bytes(fmt, cols);
    const act = arena.alloc(nAct * actBytes);
    arena.kernels.prepare_act(fmt, x, nAct, cols, act);
    const out = arena.alloc(nAct * rows * 4);
    rt.matmul(w, act, actBytes, nAct, out, rows);
    const got = Array.from(arena.f32(out, nAct * rows));

    const xs = arena.f32(x, nAct * cols);
    for (let i = 0; i < nAct; i++) {
      for (let r = 0; r < rows; r++) {
        const ref = f64Product(values, xs, cols, r, i);
        expect(Math.abs(got[i * rows + r] - ref.value)).toBeLessThan(ref.magnitude * 0.02);
      }
    }

    // The same activation row alone, and a sub-range of weight rows, give bit-identical outputs.
    const single = arena.alloc(rows * 4);
    arena.kernels.matmul(type.id, w.ptr, cols, 0, rows, act + 3 * actBytes, actBytes, 1, single, rows);
    expect(Array.from(arena.f32(single, rows))).toEqual(got.slice(3 * rows, 4 * rows));
    const part = arena.alloc(rows * 4);
    arena.f32(part, rows).fill(0);
    arena.kernels.matmul(type.id, w.ptr, cols, 5, 11, act + 3 * actBytes, actBytes, 1, part, rows);
    expect(Array.from(arena.f32(part, rows)).slice(5, 11)).toEqual(got.slice(3 * rows + 5, 3 * rows + 11));
  });
});
