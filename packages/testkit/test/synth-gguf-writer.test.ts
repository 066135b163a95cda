import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gguf, writeGguf } from '../src/gguf-writer.js';
import { SeededRandom } from '../src/seeded-random.js';
import { TensorWriteError } from '../src/synth-errors.js';
import { encodeTensorData, roundToF16 } from '../src/tensor-encoding.js';
import { parseGguf } from './support/gguf-test-parser.js';

/** Reference Q8_0 dequantisation: value = f16(d) * int8(q). */
function dequantQ8_0(bytes: Uint8Array, n: number): { values: Float32Array; scales: Float32Array } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Float32Array(n);
  const scales = new Float32Array(n / 32);
  for (let b = 0; b < n / 32; b++) {
    const h = v.getUint16(b * 34, true);
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    const d = (h & 0x8000 ? -1 : 1) * (exp === 0 ? mant * 2 ** -24 : (1 + mant / 1024) * 2 ** (exp - 15));
    scales[b] = d;
    for (let j = 0; j < 32; j++) values[b * 32 + j] = d * v.getInt8(b * 34 + 2 + j);
  }
  return { values, scales };
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synth-gguf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function randomMatrix(rows: number, cols: number, seed: number, std = 1): Float32Array {
  const out = new Float32Array(rows * cols);
  new SeededRandom(seed).fillNormal(out, 0, std);
  return out;
}

describe('writeGguf', () => {
  it('writes GGUF v3 metadata of every needed type, tensor infos with reversed dims, and 32-aligned data', async () => {
    const path = join(dir, 'meta.gguf');
    const a = randomMatrix(3, 5, 1);
    const b = randomMatrix(7, 1, 2);
    await writeGguf(path, {
      metadata: [
        ['general.architecture', gguf.str('llama')],
        ['x.u32', gguf.u32(4000000000)],
        ['x.i32', gguf.i32(-7)],
        ['x.f32', gguf.f32(0.1)],
        ['x.bool', gguf.bool(true)],
        ['x.strs', gguf.strings(['a', 'Ġb', '▁ünï'])],
        ['x.f32s', gguf.f32s([1.5, -2])],
        ['x.i32s', gguf.i32s([3, -4, 5])],
      ],
      tensors: [
        { name: 'a', shape: [3, 5], dtype: 'F32', chunks: () => [a] },
        { name: 'b', shape: [7], dtype: 'F16', chunks: () => [b.subarray(0, 4), b.subarray(4)] },
      ],
    });
    const buf = new Uint8Array(await readFile(path));
    const g = parseGguf(buf);
    expect(g.magic).toBe('GGUF');
    expect(g.version).toBe(3);
    expect(g.metadata.get('x.u32')).toBe(4000000000);
    expect(g.metadata.get('x.i32')).toBe(-7);
    expect(g.metadata.get('x.f32')).toBeCloseTo(0.1, 7);
    expect(g.types.get('x.f32')).toBe(6);
    expect(g.metadata.get('x.bool')).toBe(true);
    expect(g.metadata.get('x.strs')).toEqual(['a', 'Ġb', '▁ünï']);
    expect(g.metadata.get('x.f32s')).toEqual([1.5, -2]);
    expect(g.types.get('x.i32s')).toBe(905);
    expect(g.metadata.get('x.i32s')).toEqual([3, -4, 5]);
    expect(g.tensors).toEqual([
      { name: 'a', ne: [5, 3], type: 0, offset: 0 },
      { name: 'b', ne: [7], type: 1, offset: 64 }, // 60 bytes of F32 padded to 64
    ]);
    expect(g.dataOffset % 32).toBe(0);
    const view = new DataView(buf.buffer, buf.byteOffset);
    for (let i = 0; i < a.length; i++) expect(view.getFloat32(g.dataOffset + 4 * i, true)).toBe(a[i]);
    for (let i = 0; i < b.length; i++) {
      const h = view.getUint16(g.dataOffset + 64 + 2 * i, true);
      const exp = (h >> 10) & 0x1f;
      const val = (h & 0x8000 ? -1 : 1) * (1 + (h & 0x3ff) / 1024) * 2 ** (exp - 15);
      expect(val).toBe(roundToF16(b[i]));
      expect(Math.abs(val - b[i])).toBeLessThanOrEqual(Math.abs(b[i]) * 2 ** -11);
    }
    expect(buf.length).toBe(g.dataOffset + 64 + 32); // 14 bytes of F16 padded to 32
  });

  it('quantises Q8_0 like ggml: per 32-block d = amax/127 as F16, every value within d/2 after dequantisation', async () => {
    const rows = 8;
    const cols = 96;
    const x = randomMatrix(rows, cols, 3, 0.05);
    x.fill(0, 32, 64); // an all-zero block
    x[100] = 3.5; // a block dominated by one large value
    x[101] = -3.5;
    const path = join(dir, 'q8.gguf');
    await writeGguf(path, {
      metadata: [['general.architecture', gguf.str('llama')]],
      tensors: [{ name: 'w', shape: [rows, cols], dtype: 'Q8_0', chunks: () => [x.subarray(0, 5 * cols), x.subarray(5 * cols)] }],
    });
    const buf = new Uint8Array(await readFile(path));
    const g = parseGguf(buf);
    expect(g.tensors[0]).toEqual({ name: 'w', ne: [cols, rows], type: 8, offset: 0 });
    const n = rows * cols;
    const { values, scales } = dequantQ8_0(buf.subarray(g.dataOffset, g.dataOffset + (n / 32) * 34), n);
    expect(scales[1]).toBe(0);
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      expect(scales[b]).toBe(roundToF16(Math.fround(amax / 127)));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        // d/2 from rounding, plus the F16 rounding of d itself scaled by |q| <= 127.
        const tol = scales[b] / 2 + 127 * Math.abs(scales[b] - amax / 127) + 1e-12;
        expect(Math.abs(values[i] - x[i])).toBeLessThanOrEqual(tol);
      }
    }
    // ±3.5 is the block's amax: it must land on q = ±127 exactly.
    const q = new Int8Array(buf.buffer, buf.byteOffset + g.dataOffset + 3 * 34 + 2, 32);
    expect(q[100 - 96]).toBe(127);
    expect(q[101 - 96]).toBe(-127);
  });

  it('rounds Q8_0 halves away from zero (C roundf), not up like Math.round', () => {
    const x = new Float32Array(32);
    x[0] = 127; // d = 1 exactly
    x[1] = -2.5;
    x[2] = 2.5;
    x[3] = -0.5;
    const out = encodeTensorData(x, 'Q8_0');
    const q = new Int8Array(out.buffer, 2, 32);
    expect([q[0], q[1], q[2], q[3]]).toEqual([127, -3, 3, -1]);
  });

  it('rejects tensors whose data does not match the shape, and Q8_0 rows that are not whole blocks', async () => {
    const path = join(dir, 'bad.gguf');
    await expect(
      writeGguf(path, { metadata: [], tensors: [{ name: 't', shape: [2, 32], dtype: 'F32', chunks: () => [new Float32Array(32)] }] }),
    ).rejects.toBeInstanceOf(TensorWriteError);
    await expect(
      writeGguf(path, { metadata: [], tensors: [{ name: 't', shape: [2, 40], dtype: 'Q8_0', chunks: () => [new Float32Array(80)] }] }),
    ).rejects.toThrow(/multiple of 32/);
  });
});
