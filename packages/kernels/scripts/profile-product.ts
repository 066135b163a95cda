// One product of one kernel build, repeated for S seconds: a target for perf, which with V8's jitdump shows the
// machine code V8 made of a kernel and where its time goes (Node's release builds have no --print-wasm-code):
//   perf record -k 1 -o /tmp/p.data node --perf-prof --perf-prof-path=/tmp --import tsx \
//     packages/kernels/scripts/profile-product.ts Q4_K 1 3 [file.wasm]
//   perf inject --jit -i /tmp/p.data -o /tmp/p.jit.data && perf report -i /tmp/p.jit.data --comm MainThread
//   perf annotate -i /tmp/p.jit.data --stdio -s 'JS:wasm-function[N]-N-turbofan'
// Functions are numbered, not named: `node packages/kernels/scripts/wasm-function-names.mjs` lists which is which.
// Arguments: TYPE, activation rows (1: decode), seconds, and the build (default: the relaxed one).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ggmlRowBytes, ggmlTypeByName, instantiateKernels } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const libDir = process.env.GGML_LIB_DIR ?? join(here, '../../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
const [typeName, nActArg, secondsArg, fileArg] = process.argv.slice(2);
const type = ggmlTypeByName(typeName ?? '');
if (!type) throw new Error('usage: profile-product.ts TYPE [rows] [seconds] [file.wasm]');
const nAct = Number(nActArg ?? 1), seconds = Number(secondsArg ?? 3);
const file = fileArg ?? join(here, '../wasm/kernels-relaxed.wasm');
const rows = 4096, cols = 4096;

// 64 rows of ggml's own encoding of random values (as bench-kernels.ts), tiled to the full height.
const dir = mkdtempSync(join(tmpdir(), 'profile-product-'));
const x = Float32Array.from({ length: 64 * cols }, (_, j) => Math.sin(j * 1.3) * 0.05);
writeFileSync(join(dir, 'x'), new Uint8Array(x.buffer));
execFileSync('python3', [join(here, '../test/support/ggml-oracle.py'), libDir, String(type.id), String(cols), join(dir, 'x'), join(dir, 'q'), join(dir, 'y')]);
const sample = new Uint8Array(readFileSync(join(dir, 'q')));
rmSync(dir, { recursive: true });

const rb = ggmlRowBytes(type, cols);
const mem = new WebAssembly.Memory({ initial: Math.ceil((rb * rows + nAct * cols * 8 + (8 << 20)) / 65536), maximum: 65536, shared: true });
const k = instantiateKernels(new WebAssembly.Module(readFileSync(file)), mem);
const w = 1 << 20;
const u8 = new Uint8Array(mem.buffer);
for (let r = 0; r < rows; r += 64) u8.set(sample, w + r * rb);
const xp = w + rb * rows;
new Float32Array(mem.buffer, xp, nAct * cols).set(Float32Array.from({ length: nAct * cols }, (_, j) => Math.cos(j * 0.7)));
const fmt = k.act_format(type.id);
const ab = fmt === 0 ? cols * 4 : k.act_row_bytes(fmt, cols);
const act = xp + nAct * cols * 4;
if (fmt !== 0) k.prepare_act(fmt, xp, nAct, cols, act);
const out = act + nAct * ab;

const end = performance.now() + seconds * 1000;
let calls = 0;
while (performance.now() < end) {
  k.matmul(type.id, w, cols, 0, rows, fmt === 0 ? xp : act, ab, nAct, out, rows);
  calls++;
}
console.log(`${typeName} × ${nAct} row(s), ${file}: ${((seconds * 1000) / calls).toFixed(3)} ms a product`);
