// A/B timing of two builds of the kernels on the same product, interleaved in one process (CPU time), for judging a
// kernel change on a machine whose cores are shared:  npx tsx ab-kernels.ts A.wasm B.wasm TYPE [nAct] [rounds]
// Shape: AB_ROWS × AB_COLS (default 4096 × 4096); a model-sized matrix (e.g. 262144 × 1024, 285 MB of Q8_0) shows
// how the access pattern streams from memory, which a cache-sized one hides.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ggmlRowBytes, ggmlTypeByName, instantiateKernels } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const libDir = process.env.GGML_LIB_DIR ?? join(here, '../../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
const [fa, fb, typeName, nActArg, roundsArg] = process.argv.slice(2);
const type = ggmlTypeByName(typeName)!;
const nAct = Number(nActArg ?? 1);
const rounds = Number(roundsArg ?? 20);
const rows = Number(process.env.AB_ROWS ?? 4096), cols = Number(process.env.AB_COLS ?? 4096);
const dir = mkdtempSync(join(tmpdir(), 'ab-'));
const x = Float32Array.from({ length: 64 * cols }, (_, j) => Math.sin(j * 1.3) * 0.05);
writeFileSync(join(dir, 'x'), new Uint8Array(x.buffer));
execFileSync('python3', [join(here, '../test/support/ggml-oracle.py'), libDir, String(type.id), String(cols), join(dir, 'x'), join(dir, 'q'), join(dir, 'y')]);
const sample = new Uint8Array(readFileSync(join(dir, 'q')));
rmSync(dir, { recursive: true });
const rb = ggmlRowBytes(type, cols);

function setup(file: string) {
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
  return () => k.matmul(type.id, w, cols, 0, rows, fmt === 0 ? xp : act, ab, nAct, out, rows);
}
const runs = [setup(fa), setup(fb)];
const best = [Infinity, Infinity];
for (let i = 0; i < rounds; i++) {
  for (const j of [0, 1]) {
    const n = nAct === 1 && rows * cols <= 1 << 24 ? 20 : 1;
    const c0 = process.cpuUsage();
    for (let k = 0; k < n; k++) runs[j]();
    const c = process.cpuUsage(c0);
    best[j] = Math.min(best[j], (c.user + c.system) / 1000 / n);
  }
}
console.log(`${typeName} nAct=${nAct}: A ${best[0].toFixed(3)} ms, B ${best[1].toFixed(3)} ms (best CPU time per product)`);
