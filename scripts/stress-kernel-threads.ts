/**
 * Kernel threads under oversubscription: several processes, each with a 2-thread kernel runtime, run products of
 * alternating shapes (so consecutive jobs have different chunk counts) back to back, and check every output's bits
 * against a one-thread runtime. Three 2-thread nodes on this machine's 2 cores are the case that found a worker
 * running a torn job (thread-control.ts: publishJob): an out-of-bounds trap on a worker, or a caller waiting out its
 * stall timeout. Prints per process: products, wrong outputs, errors.
 *
 *   npx tsx scripts/stress-kernel-threads.ts [--processes 3] [--seconds 20]
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ggmlRowBytes, ggmlTypeByName, SerialKernelRuntime, ThreadedKernelRuntime, type KernelRuntime, type WeightMatrix } from '@edge-node/kernels';

const { values: v } = parseArgs({ options: { processes: { type: 'string', default: '3' }, seconds: { type: 'string', default: '20' }, child: { type: 'boolean', default: false } } });
const seconds = Number(v.seconds);

interface Tally {
  products: number;
  wrong: number;
  errors: string[];
}

/** Columns 576 (the SmolLM2 width); rows vary so the jobs' chunk counts do. */
const SHAPES = [
  { rows: 576, nAct: 1 },
  { rows: 1536, nAct: 1 },
  { rows: 64, nAct: 4 },
  { rows: 4096, nAct: 1 },
  { rows: 32, nAct: 1 },
  { rows: 200, nAct: 2 },
];
const COLS = 576;

async function child(): Promise<Tally> {
  const serial = await SerialKernelRuntime.create();
  const threaded = await ThreadedKernelRuntime.create({ threads: 2, minParallelWork: 0, stallTimeoutMs: 5000 });
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  const runs = [] as { run(): Uint32Array; expect: Uint32Array }[];
  for (const s of SHAPES) {
    const w = Float32Array.from({ length: s.rows * COLS }, rand);
    const x = Float32Array.from({ length: s.nAct * COLS }, rand);
    const make = async (rt: KernelRuntime) => {
      const type = ggmlTypeByName('F32')!;
      const weights = new Uint8Array(w.buffer);
      const arena = await rt.createArena(weights.length + (4 << 20));
      const m: WeightMatrix = { arena, type, rows: s.rows, cols: COLS, ptr: arena.alloc(weights.length), rowBytes: ggmlRowBytes(type, COLS) };
      arena.bytes(m.ptr, weights.length).set(weights);
      const xp = arena.alloc(x.length * 4);
      arena.f32(xp, x.length).set(x);
      const actBytes = arena.kernels.act_row_bytes(rt.actFormat(type), COLS);
      const out = arena.alloc(s.nAct * s.rows * 4);
      return () => {
        rt.matmul(m, xp, actBytes, s.nAct, out, s.rows);
        return new Uint32Array(arena.bytes(out, s.nAct * s.rows * 4).slice().buffer);
      };
    };
    const expect = (await make(serial))();
    runs.push({ run: await make(threaded), expect });
  }
  const tally: Tally = { products: 0, wrong: 0, errors: [] };
  const until = performance.now() + seconds * 1000;
  for (let i = 0; performance.now() < until && tally.errors.length < 3; i++) {
    const r = runs[i % runs.length];
    try {
      const got = r.run();
      tally.products++;
      if (got.some((x, j) => x !== r.expect[j])) tally.wrong++;
    } catch (err) {
      tally.errors.push((err as Error).message.slice(0, 200));
      break; // a failed runtime refuses further work
    }
    // A turn of the event loop now and then, as a node's would be.
    if (i % 64 === 63) await new Promise((res) => setImmediate(res));
  }
  await threaded.close();
  return tally;
}

if (v.child) {
  process.stdout.write(JSON.stringify(await child()) + '\n');
} else {
  const n = Number(v.processes);
  const self = fileURLToPath(import.meta.url);
  const results = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<string>((resolve) => {
        const p = spawn(process.execPath, [...process.execArgv, self, '--child', '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (c: Buffer) => (out += c.toString()));
        p.on('exit', (code) => resolve(out.trim() || `exited ${code}`));
      }),
    ),
  );
  results.forEach((r, i) => console.log(`process ${i + 1}: ${r}`));
}
