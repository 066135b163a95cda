/**
 * The relaxed-SIMD build against the SIMD128 build: every output bit the same, for every weight type, batches of 1–9
 * activation rows and larger ones that mix the relaxed build's eight- and nine-row groups with the rest (10, 13–19,
 * 33, 128), ragged row ranges and several widths. This is what lets a cluster mix runtimes (a Node 24 node on the
 * relaxed build, an old browser tab on SIMD128) and still give identical text, and what batch invariance rests on.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  chooseKernelIsa,
  KERNEL_ISA_ENV,
  detectWasmFeatures,
  fillSampleBlocks,
  ggmlRowBytes,
  ggmlTypeByName,
  KERNEL_RELAXED_UNSHARED_WASM_URL,
  KERNEL_TYPE_NAMES,
  KERNEL_UNSHARED_WASM_URL,
  KernelArena,
  probeRelaxed,
} from '../src/index.js';
import { rng } from './support/seeded-random.js';

const relaxedHere = detectWasmFeatures().relaxedSimd && Number(process.versions.node.split('.')[0]) >= 22;

async function arenaOf(url: URL): Promise<KernelArena> {
  const module = await WebAssembly.compile(new Uint8Array(await readFile(url)));
  return new KernelArena(module, new WebAssembly.Memory({ initial: 256, maximum: 65536 }), 0);
}

/** out[i·rows + r] for rows [r0, r1) and activation rows [i0, i0 + n) of x, as the build computes them. */
function product(arena: KernelArena, typeId: number, blocks: Uint8Array, rows: number, cols: number, x: Float32Array, nAct: number, r0: number, r1: number, i0: number, n: number): Uint32Array {
  const w = arena.alloc(blocks.length);
  arena.bytes(w, blocks.length).set(blocks);
  const xp = arena.alloc(x.length * 4);
  arena.f32(xp, x.length).set(x);
  const fmt = arena.kernels.act_format(typeId);
  let act = xp;
  let actBytes = cols * 4;
  if (fmt !== 0) {
    actBytes = arena.kernels.act_row_bytes(fmt, cols);
    act = arena.alloc(nAct * actBytes);
    arena.kernels.prepare_act(fmt, xp, nAct, cols, act);
  }
  const out = arena.alloc(nAct * rows * 4);
  arena.f32(out, nAct * rows).fill(Number.NaN);
  arena.kernels.matmul(typeId, w, cols, r0, r1, act + i0 * actBytes, actBytes, n, out, rows);
  const bits = Uint32Array.from(new Uint32Array(arena.memory.buffer, out, nAct * rows));
  arena.release(out);
  if (act !== xp) arena.release(act);
  arena.release(xp);
  arena.release(w);
  return bits;
}

describe.skipIf(!relaxedHere)('the relaxed-SIMD kernels', () => {
  let simd: KernelArena;
  let relaxed: KernelArena;
  let probedShape = 0;
  beforeAll(async () => {
    simd = await arenaOf(KERNEL_UNSHARED_WASM_URL);
    relaxed = await arenaOf(KERNEL_RELAXED_UNSHARED_WASM_URL);
    probedShape = relaxed.kernels.paired_lowering();
  });
  afterEach(() => relaxed.kernels.set_paired_lowering(probedShape));

  it('pass their probe on this runtime and are the build chosen for it (unless EDGE_NODE_KERNEL_ISA asks for SIMD128)', async () => {
    expect(await probeRelaxed()).toBeUndefined();
    expect((await chooseKernelIsa()).isa).toBe(process.env[KERNEL_ISA_ENV] === 'simd128' ? 'simd128' : 'relaxed-simd');
  });

  for (const name of KERNEL_TYPE_NAMES) {
    // Both shapes of the relaxed K-quant products (quant/dot-lowering.ts: one-step and paired lowerings) are exact on
    // any runtime, so both are checked here whichever this machine's V8 picks.
    it(`${name}: the same bits as SIMD128 for batches 1–10, 13–19, 33 and 128, row ranges, widths and both product shapes`, () => {
      const type = ggmlTypeByName(name)!;
      const rand = rng(type.id * 101 + 7);
      for (const cols of [256, 1280]) {
        const rows = 37; // not a multiple of the 4-row unroll or the 16-row tile
        const blocks = new Uint8Array(ggmlRowBytes(type, cols) * rows);
        fillSampleBlocks(type, blocks, () => Math.floor(rand() * 256));
        const nAct = 128;
        // Activations of varied magnitude, a few large outliers and exact zeros: every sign and rounding case.
        const x = Float32Array.from({ length: nAct * cols }, (_, j) => (j % 17 === 0 ? 0 : (rand() * 2 - 1) * (j % 29 === 3 ? 40 : 1)));
        for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 17, 18, 19, 33, 128]) {
          for (const [r0, r1] of [[0, rows], [5, 22], [33, 37]] as const) {
            const i0 = nAct - n;
            const a = product(simd, type.id, blocks, rows, cols, x, nAct, r0, r1, i0, n);
            for (const paired of [0, 1]) {
              relaxed.kernels.set_paired_lowering(paired);
              const b = product(relaxed, type.id, blocks, rows, cols, x, nAct, r0, r1, i0, n);
              const diff = a.findIndex((v, k) => v !== b[k]);
              expect(diff, diff < 0 ? '' : `${cols} cols, rows [${r0}, ${r1}), batch ${n}, ${paired ? 'paired' : 'one-step'} shape: output ${diff} is ${new Float32Array(a.buffer)[diff]} on SIMD128, ${new Float32Array(b.buffer)[diff]} relaxed`).toBe(-1);
              // and something was computed (not two untouched buffers)
              expect(new Float32Array(b.buffer).slice(r0, r1).some((v) => v !== 0 && !Number.isNaN(v))).toBe(true);
            }
          }
        }
      }
    });
  }

  it('uses int8 activations for the types it has relaxed products for, and int16 for the signed ones that widen', () => {
    for (const name of ['Q4_0', 'Q5_0', 'Q4_1', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K']) {
      const id = ggmlTypeByName(name)!.id;
      expect(relaxed.kernels.act_format(id), name).not.toBe(simd.kernels.act_format(id));
      const bytes = relaxed.kernels.act_row_bytes(relaxed.kernels.act_format(id), 4096);
      const simdBytes = simd.kernels.act_row_bytes(simd.kernels.act_format(id), 4096);
      // Q4_K, Q5_K and Q6_K rows hold their int8 q twice, in order and in run-pair order (activation.ts).
      if (['Q4_K', 'Q5_K', 'Q6_K'].includes(name)) expect(bytes, name).toBe(simdBytes);
      else expect(bytes, name).toBeLessThan(simdBytes);
    }
    // Q8_0's signed weights widen to int16 in both builds (int-dot.ts): the relaxed product needs their activations
    // split by sign, and was slower. (Q4_0 and Q5_0 take theirs unsigned and their offset off by lane sums.)
    for (const name of ['Q8_0']) {
      const id = ggmlTypeByName(name)!.id;
      expect(relaxed.kernels.act_format(id), name).toBe(simd.kernels.act_format(id));
    }
  });
});
