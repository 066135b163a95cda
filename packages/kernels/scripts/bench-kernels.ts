// Microbenchmark of the kernels' products, one thread, for each build (relaxed SIMD where this runtime passes its
// probe, and SIMD128): GB/s and G weights/s per weight type for a 4096×4096 matrix–vector product (decode), beside the
// bound a memory read of --read-gbps puts on it, and GFLOP/s for a 128-row batch (prefill).
//   npx tsx packages/kernels/scripts/bench-kernels.ts [TYPE…] [--rows N] [--cols N] [--batch N] [--seconds S]
//     [--isa relaxed-simd|simd128] [--read-gbps G]   (G: one thread's streaming read, bench-read-ceiling.ts; 26 quiet)
// Weights are ggml's own encoding of random rows (test/support/ggml-oracle.py on node-llama-cpp's libggml-base),
// 64 distinct rows tiled to the full height, so scales and minimums are realistic. Figures are best and median of
// repeated timings in CPU time;
// this machine's cores are shared, so run it more than once.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ggmlRowBytes, ggmlTypeByName, KERNEL_ISAS, probeRelaxed, SerialKernelRuntime, type KernelIsa } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const libDir = process.env.GGML_LIB_DIR ?? join(here, '../../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
const ALL = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];

const args = process.argv.slice(2);
function opt(name: string, dflt: number): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
}
const rows = opt('--rows', 4096);
const cols = opt('--cols', 4096);
const batch = opt('--batch', 128);
const seconds = opt('--seconds', 1);
const readGBps = opt('--read-gbps', 26);
const isaAt = args.indexOf('--isa');
const asked = isaAt >= 0 ? (args.splice(isaAt, 2)[1] as KernelIsa) : undefined;
if (asked && !KERNEL_ISAS.includes(asked)) throw new Error(`--isa takes ${KERNEL_ISAS.join(' or ')}`);
const relaxedFailure = await probeRelaxed();
const isas: KernelIsa[] = asked ? [asked] : relaxedFailure === undefined ? ['relaxed-simd', 'simd128'] : ['simd128'];
if (!asked && relaxedFailure) console.log(`relaxed build not measured: ${relaxedFailure}`);
const types = args.length > 0 ? args : ALL;

function quantizeRows(typeId: number, n: number): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'bench-kernels-'));
  try {
    const x = new Float32Array(n * cols);
    let s = 12345;
    for (let j = 0; j < x.length; j++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      x[j] = (s / 2 ** 32 - 0.5) * 0.1;
    }
    writeFileSync(join(dir, 'x'), new Uint8Array(x.buffer));
    execFileSync('python3', [join(here, '../test/support/ggml-oracle.py'), libDir, String(typeId), String(cols), join(dir, 'x'), join(dir, 'q'), join(dir, 'y')], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(join(dir, 'q')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Per-call time of fn: batches of calls of ~50 ms, timed by the process's CPU time (the cores here are shared with
 * other work, and CPU time does not count the time another process held ours off the core); best and median batch.
 */
function time(fn: () => void, budget: number): { best: number; median: number } {
  fn(); // warm-up (and tier-up)
  const t0 = performance.now();
  fn();
  const once = Math.max(performance.now() - t0, 0.01);
  const per = Math.max(1, Math.round(50 / once));
  const t: number[] = [];
  const end = performance.now() + budget * 1000;
  while (performance.now() < end || t.length < 3) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < per; k++) fn();
    const c = process.cpuUsage(c0);
    t.push((c.user + c.system) / 1000 / per);
  }
  t.sort((a, b) => a - b);
  return { best: t[0], median: t[t.length >> 1] };
}

console.log(`kernels, 1 thread, Node ${process.versions.node}, ${rows}×${cols} weights; decode = 1 activation row, prefill = ${batch} rows (ms best/median); bound = ${readGBps} GB/s of weights`);
console.log('type  build         weight MB | decode ms      GB/s  Gw/s bound | prefill ms     GFLOP/s | act prep µs (1 row)');
const runtimes = new Map<KernelIsa, SerialKernelRuntime>();
for (const isa of isas) runtimes.set(isa, await SerialKernelRuntime.create(isa));
for (const name of types) for (const [isa, rt] of runtimes) {
  const type = ggmlTypeByName(name);
  if (!type) throw new Error(`unknown type ${name}`);
  const rowBytes = ggmlRowBytes(type, cols);
  const sample = quantizeRows(type.id, 64);
  const bytes = rowBytes * rows;
  const arena = await rt.createArena(bytes + batch * cols * 8 + (64 << 20));
  const w = arena.alloc(bytes);
  const dst = arena.bytes(w, bytes);
  for (let r = 0; r < rows; r += 64) dst.set(sample.subarray(0, Math.min(64, rows - r) * rowBytes), r * rowBytes);

  const k = arena.kernels;
  const fmt = rt.actFormat(type);
  const x = arena.alloc(batch * cols * 4);
  const xs = arena.f32(x, batch * cols);
  for (let j = 0; j < xs.length; j++) xs[j] = Math.sin(j * 0.37);
  const actBytes = fmt === 0 ? cols * 4 : k.act_row_bytes(fmt, cols);
  const act = fmt === 0 ? x : arena.alloc(batch * actBytes);
  if (fmt !== 0) k.prepare_act(fmt, x, batch, cols, act);
  const out = arena.alloc(batch * rows * 4);

  const dec = time(() => k.matmul(type.id, w, cols, 0, rows, act, actBytes, 1, out, rows), seconds);
  const pre = time(() => k.matmul(type.id, w, cols, 0, rows, act, actBytes, batch, out, rows), seconds);
  const prep = fmt === 0 ? { best: 0 } : time(() => k.prepare_act(fmt, x, 1, cols, act), 0.2);
  const flop = 2 * rows * cols;
  const gw = (ms: number) => (rows * cols) / ms / 1e6;
  console.log(
    `${name.padEnd(5)} ${isa.padEnd(12)} ${(bytes / 1e6).toFixed(1).padStart(9)} | ${dec.best.toFixed(3).padStart(6)}/${dec.median.toFixed(3).padEnd(6)} ${(bytes / dec.best / 1e6).toFixed(1).padStart(5)} ${gw(dec.best).toFixed(1).padStart(5)} ${((readGBps * 1e3 * rows * cols) / bytes / 1e3).toFixed(1).padStart(5)} | ` +
      `${pre.best.toFixed(1).padStart(6)}/${pre.median.toFixed(1).padEnd(6)} ${((flop * batch) / pre.best / 1e6).toFixed(1).padStart(7)} | ${(prep.best * 1000).toFixed(1)}`,
  );
  await rt.releaseArena(arena);
}
for (const rt of runtimes.values()) await rt.close();
