// One product, ready to run, for the kernel scripts that time or profile it (ab-kernels.ts, profile-product.ts): a
// matrix of 64 rows of ggml's own encoding of smooth random values (test/support/ggml-oracle.py on node-llama-cpp's
// libggml-base), tiled to the full height, and nAct prepared activation rows, in a fresh instance of one kernel build.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ggmlRowBytes, ggmlTypeByName, instantiateKernels, type GgmlTypeInfo } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const libDir = process.env.GGML_LIB_DIR ?? join(here, '../../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');

export interface ProductShape {
  type: GgmlTypeInfo;
  rows: number;
  cols: number;
  nAct: number;
}

/** The shape from a type name; throws with the names it knows when it is not one. */
export function productShape(typeName: string | undefined, nAct: number, rows = 4096, cols = 4096): ProductShape {
  const type = ggmlTypeByName(typeName ?? '');
  if (!type) throw new Error(`unknown type ${typeName}: one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K … Q6_K`);
  return { type, rows, cols, nAct };
}

/** 64 rows of the type's blocks, quantised by ggml. */
export function sampleRows(shape: ProductShape): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'product-fixture-'));
  try {
    const x = Float32Array.from({ length: 64 * shape.cols }, (_, j) => Math.sin(j * 1.3) * 0.05);
    writeFileSync(join(dir, 'x'), new Uint8Array(x.buffer));
    execFileSync('python3', [join(here, '../test/support/ggml-oracle.py'), libDir, String(shape.type.id), String(shape.cols), join(dir, 'x'), join(dir, 'q'), join(dir, 'y')]);
    return new Uint8Array(readFileSync(join(dir, 'q')));
  } finally {
    rmSync(dir, { recursive: true });
  }
}

/** The product W·x of `file`'s kernels on the shape, as a function to call. */
export function productOf(file: string, shape: ProductShape, sample: Uint8Array): () => void {
  const { type, rows, cols, nAct } = shape;
  const rb = ggmlRowBytes(type, cols);
  const mem = new WebAssembly.Memory({ initial: Math.ceil((rb * rows + nAct * cols * 8 + (8 << 20)) / 65536), maximum: 65536, shared: true });
  const k = instantiateKernels(new WebAssembly.Module(readFileSync(file)), mem);
  const w = 1 << 20;
  const u8 = new Uint8Array(mem.buffer);
  for (let r = 0; r < rows; r += 64) u8.set(sample.subarray(0, Math.min(64, rows - r) * rb), w + r * rb);
  const xp = w + rb * rows;
  new Float32Array(mem.buffer, xp, nAct * cols).set(Float32Array.from({ length: nAct * cols }, (_, j) => Math.cos(j * 0.7)));
  const fmt = k.act_format(type.id);
  const ab = fmt === 0 ? cols * 4 : k.act_row_bytes(fmt, cols);
  const act = xp + nAct * cols * 4;
  if (fmt !== 0) k.prepare_act(fmt, xp, nAct, cols, act);
  const out = act + nAct * ab;
  return () => k.matmul(type.id, w, cols, 0, rows, fmt === 0 ? xp : act, ab, nAct, out, rows);
}
