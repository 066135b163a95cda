// Threaded kernel runtime benchmark: dispatch overhead, Q8_0 4096×4096 matvec and a 128-row batch, at 1 and 2 threads.
// Usage: npx tsx packages/kernels/scripts/bench-threads.ts [--rounds 5] [--threads 2]
// This machine's second core is shared with other work: every figure is repeated in rounds and reported as a range.
import { parseArgs } from 'node:util';
import { ggmlRowBytes, ggmlTypeByName, planChunkSize, SerialKernelRuntime, ThreadedKernelRuntime, type KernelRuntime, type WeightMatrix } from '../src/index.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' } } });
const rounds = Number(values.rounds);
const maxThreads = Number(values.threads);

function fillQ8_0(bytes: Uint8Array): void {
  let s = 12345;
  for (let i = 0; i < bytes.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    bytes[i] = s >>> 24;
  }
  for (let b = 0; b < bytes.length; b += 34) {
    bytes[b] = 0x00;
    bytes[b + 1] = 0x1c; // f16 scale 2^-8
  }
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  return `median ${f(s[Math.floor(s.length / 2)])} (range ${f(s[0])}–${f(s[s.length - 1])})`;
}

interface Setup {
  rt: KernelRuntime;
  w: WeightMatrix;
  act: number;
  actBytes: number;
  out: number;
  tiny: WeightMatrix;
  tinyX: number;
}

async function setup(rt: KernelRuntime, rows: number, cols: number, batch: number): Promise<Setup> {
  const type = ggmlTypeByName('Q8_0')!;
  const rowBytes = ggmlRowBytes(type, cols);
  const arena = await rt.createArena(rows * rowBytes + batch * cols * 8 + (16 << 20));
  const w: WeightMatrix = { arena, type, rows, cols, ptr: arena.alloc(rows * rowBytes), rowBytes };
  fillQ8_0(arena.bytes(w.ptr, rows * rowBytes));
  const x = arena.alloc(batch * cols * 4);
  const xs = arena.f32(x, batch * cols);
  for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i * 0.37);
  const fmt = rt.actFormat(type);
  const actBytes = arena.kernels.act_row_bytes(fmt, cols);
  const act = arena.alloc(batch * actBytes);
  arena.kernels.prepare_act(fmt, x, batch, cols, act);
  const out = arena.alloc(batch * rows * 4);
  // The smallest product that is still split in two chunks of 4 rows: its time is almost all dispatch.
  const f32 = ggmlTypeByName('F32')!;
  const tiny: WeightMatrix = { arena, type: f32, rows: 8, cols: 32, ptr: arena.alloc(8 * 32 * 4), rowBytes: 128 };
  const tinyX = arena.alloc(32 * 4);
  return { rt, w, act, actBytes, out, tiny, tinyX };
}

/** Chunks per decode product (rows 1024 or 2816, granule 16, ~4 per thread). */
function planChunks(threads: number): number {
  return Math.ceil(1024 / planChunkSize(1024, threads, 16)) * (4 / 7) + Math.ceil(2816 / planChunkSize(2816, threads, 16)) * (2 / 7) + Math.ceil(1024 / planChunkSize(1024, threads, 16)) * (1 / 7);
}

function timePerCall(n: number, fn: () => void): number {
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t) / n) * 1000; // µs
}

const ROWS = 4096;
const COLS = 4096;
const BATCH = 128;
const gb = (ROWS * ggmlRowBytes(ggmlTypeByName('Q8_0')!, COLS)) / 1e9;
console.log(`Q8_0 ${ROWS}×${COLS} (${(gb * 1000).toFixed(1)} MB), ${rounds} rounds; Node ${process.versions.node}`);

for (let threads = 1; threads <= maxThreads; threads++) {
  const rt = threads === 1 ? await SerialKernelRuntime.create() : await ThreadedKernelRuntime.create({ threads, minParallelWork: 0 });
  const s = await setup(rt, ROWS, COLS, BATCH);
  const tinyCall = () => rt.matmul(s.tiny, s.tinyX, 128, 1, s.out, 8);
  const direct = () => s.tiny.arena.kernels.matmul(0, s.tiny.ptr, 32, 0, 8, s.tinyX, 128, 1, s.out, 8);
  const overhead: number[] = [];
  const spaced: number[] = [];
  const matvec: number[] = [];
  const batch: number[] = [];
  for (let r = 0; r < rounds; r++) {
    timePerCall(20_000, tinyCall);
    overhead.push(timePerCall(100_000, tinyCall) - timePerCall(100_000, direct));
    // Dispatches 1 ms apart: the workers have gone to sleep in between.
    const gaps: number[] = [];
    for (let i = 0; i < 50; i++) {
      const until = performance.now() + 1;
      while (performance.now() < until);
      const t = performance.now();
      tinyCall();
      gaps.push((performance.now() - t) * 1000);
    }
    spaced.push(gaps.sort((a, b) => a - b)[25]);
    rt.matmul(s.w, s.act, s.actBytes, 1, s.out, ROWS);
    matvec.push(timePerCall(50, () => rt.matmul(s.w, s.act, s.actBytes, 1, s.out, ROWS)) / 1000);
    batch.push(timePerCall(2, () => rt.matmul(s.w, s.act, s.actBytes, BATCH, s.out, ROWS)) / 1000);
  }
  const decode = await decodeStep(rt);
  const workers = rt instanceof ThreadedKernelRuntime ? `, chunks run by workers: ${rt.workerChunks}` : '';
  console.log(`\n${threads} thread(s)${workers}`);
  if (threads > 1) {
    console.log(`  dispatch overhead, back to back:   ${stats(overhead)} µs per product`);
    console.log(`  smallest split product, 1 ms gaps: ${stats(spaced)} µs (median of 50 per round)`);
  }
  console.log(`  matvec:            ${stats(matvec)} ms  →  ${stats(matvec.map((ms) => gb / (ms / 1000)))} GB/s`);
  console.log(`  ${BATCH}-row batch:     ${stats(batch)} ms  →  ${stats(batch.map((ms) => (2 * ROWS * COLS * BATCH) / (ms / 1000) / 1e9))} GFLOP/s`);
  console.log(`  decode-step products, hidden 1024 × 16 layers (${(decode.bytes / 1e6).toFixed(0)} MB): ${stats(decode.ms)} ms per step, ${decode.cores.toFixed(2)} cores busy${decode.waited.length ? `; the caller waited for chunks held by workers ${stats(decode.waited)} ms; workers ran ${(decode.share * 100).toFixed(0)}% of the chunks` : ''}`);
  await rt.close();
}

/**
 * The products of one decode step of a ~300M-parameter model (hidden 1024, FFN 2816, 16 layers: q, k, v, o, gate, up,
 * down), issued back to back as the engine will: 112 dispatches per token.
 */
async function decodeStep(rt: KernelRuntime): Promise<{ ms: number[]; waited: number[]; share: number; cores: number; bytes: number }> {
  const H = 1024;
  const F = 2816;
  const shapes = [[H, H], [H, H], [H, H], [H, H], [F, H], [F, H], [H, F]];
  const type = ggmlTypeByName('Q8_0')!;
  const perLayer = shapes.reduce((n, [r, c]) => n + r * ggmlRowBytes(type, c), 0);
  const arena = await rt.createArena(16 * perLayer + (8 << 20));
  const mats: WeightMatrix[] = [];
  for (let l = 0; l < 16; l++)
    for (const [rows, cols] of shapes) {
      const rowBytes = ggmlRowBytes(type, cols);
      const w: WeightMatrix = { arena, type, rows, cols, ptr: arena.alloc(rows * rowBytes), rowBytes };
      fillQ8_0(arena.bytes(w.ptr, rows * rowBytes));
      mats.push(w);
    }
  const fmt = rt.actFormat(type);
  const x = arena.alloc(F * 4);
  arena.f32(x, F).fill(0.25);
  const actH = arena.alloc(arena.kernels.act_row_bytes(fmt, F));
  arena.kernels.prepare_act(fmt, x, 1, F, actH);
  const out = arena.alloc(F * 4);
  const step = () => {
    for (const w of mats) rt.matmul(w, actH, arena.kernels.act_row_bytes(fmt, w.cols), 1, out, w.rows);
  };
  step();
  const ms: number[] = [];
  const waited: number[] = [];
  const threaded = rt instanceof ThreadedKernelRuntime ? rt : undefined;
  const c0 = threaded ? [threaded.workerChunks, threaded.stats.dispatches] : [0, 0];
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    const w0 = rt instanceof ThreadedKernelRuntime ? rt.stats.waitMs : 0;
    ms.push(timePerCall(20, step) / 1000);
    if (rt instanceof ThreadedKernelRuntime) waited.push((rt.stats.waitMs - w0) / 20);
  }
  // Share of the chunks the workers ran (8 chunks per product with 2 threads).
  const share = threaded ? (threaded.workerChunks - c0[0]) / ((threaded.stats.dispatches - c0[1]) * planChunks(rt.threads)) : 0;
  // Cores this process actually got (CPU time of all its threads over wall time): the figure that says whether the
  // shared second core was there at all.
  const cpu = process.cpuUsage(cpu0);
  const cores = (cpu.user + cpu.system) / 1000 / (performance.now() - wall0);
  return { ms, waited, share, cores, bytes: 16 * perLayer };
}
