import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ggmlRowBytes,
  ggmlTypeByName,
  KernelThreadError,
  SerialKernelRuntime,
  ThreadedKernelRuntime,
  type KernelArena,
  type KernelRuntime,
  type WeightMatrix,
} from '../src/index.js';
import { compileRangeKernels } from './range-kernel-fixture.js';
import { rng } from './support/seeded-random.js';

// Random Q8_0 blocks: an f16 scale in [2^-10, 2^-6) and int8 values.
function randomQ8_0(rows: number, cols: number, rand: () => number): Uint8Array {
  const bytes = new Uint8Array(rows * (cols / 32) * 34);
  const view = new DataView(bytes.buffer);
  for (let b = 0; b < bytes.length; b += 34) {
    view.setUint16(b, 0x1400 | Math.floor((rand() + 0.5) * 0x7ff), true);
    for (let j = 0; j < 32; j++) view.setInt8(b + 2 + j, Math.round(rand() * 254));
  }
  return bytes;
}

interface Case {
  type: 'Q8_0' | 'F32';
  rows: number;
  cols: number;
  nAct: number;
}

/** Places a product in a new arena of a runtime; run() computes it (again) and returns the output bits. */
async function product(rt: KernelRuntime, c: Case, weights: Uint8Array, x: Float32Array): Promise<{ run(): Uint32Array; arena: KernelArena }> {
  const type = ggmlTypeByName(c.type)!;
  const rowBytes = ggmlRowBytes(type, c.cols);
  const arena = await rt.createArena(weights.length + (8 << 20));
  const w: WeightMatrix = { arena, type, rows: c.rows, cols: c.cols, ptr: arena.alloc(weights.length), rowBytes };
  arena.bytes(w.ptr, weights.length).set(weights);
  const xp = arena.alloc(x.length * 4);
  arena.f32(xp, x.length).set(x);
  const fmt = rt.actFormat(type);
  const actBytes = arena.kernels.act_row_bytes(fmt, c.cols);
  let act = xp;
  if (c.type !== 'F32') {
    act = arena.alloc(c.nAct * actBytes);
    arena.kernels.prepare_act(fmt, xp, c.nAct, c.cols, act);
  }
  const out = arena.alloc(c.nAct * c.rows * 4);
  const run = () => {
    arena.f32(out, c.nAct * c.rows).fill(Number.NaN);
    rt.matmul(w, act, actBytes, c.nAct, out, c.rows);
    return new Uint32Array(arena.bytes(out, c.nAct * c.rows * 4).slice().buffer);
  };
  return { run, arena };
}

describe('ThreadedKernelRuntime', () => {
  const runtimes: KernelRuntime[] = [];
  let serial: KernelRuntime;
  let two: ThreadedKernelRuntime;
  let three: ThreadedKernelRuntime;
  let fixture: WebAssembly.Module;

  beforeAll(async () => {
    fixture = await compileRangeKernels();
    serial = await SerialKernelRuntime.create();
    // Every product is split, however small (minParallelWork 0), so the split itself is what is compared.
    two = await ThreadedKernelRuntime.create({ threads: 2, minParallelWork: 0 });
    three = await ThreadedKernelRuntime.create({ threads: 3, minParallelWork: 0 });
    runtimes.push(serial, two, three);
  });
  afterAll(async () => {
    for (const rt of runtimes) await rt.close();
  });

  const cases: Case[] = [
    { type: 'Q8_0', rows: 1037, cols: 160, nAct: 1 },
    { type: 'Q8_0', rows: 1037, cols: 160, nAct: 7 },
    { type: 'Q8_0', rows: 45, cols: 96, nAct: 3 },
    { type: 'F32', rows: 1031, cols: 333, nAct: 1 },
    { type: 'F32', rows: 77, cols: 61, nAct: 5 },
  ];
  for (const c of cases) {
    it(`gives bit-identical ${c.type} products ${c.rows}×${c.cols} × ${c.nAct} on 1, 2 and 3 threads`, async () => {
      const rand = rng(c.rows * 31 + c.nAct);
      const weights = c.type === 'Q8_0' ? randomQ8_0(c.rows, c.cols, rand) : new Uint8Array(Float32Array.from({ length: c.rows * c.cols }, rand).buffer);
      const x = Float32Array.from({ length: c.nAct * c.cols }, rand);
      const ref = (await product(serial, c, weights, x)).run();
      expect(ref.some((b) => Number.isNaN(new Float32Array(new Uint32Array([b]).buffer)[0]))).toBe(false);
      for (const rt of [two, three]) {
        const before = (rt as ThreadedKernelRuntime).workerChunks;
        const p = await product(rt, c, weights, x);
        expect(Array.from(p.run())).toEqual(Array.from(ref));
        // Once more until a worker took part (an idle worker may wake after the caller claimed every chunk).
        for (let i = 0; i < 200 && (rt as ThreadedKernelRuntime).workerChunks === before; i++) expect(Array.from(p.run())).toEqual(Array.from(ref));
        expect((rt as ThreadedKernelRuntime).workerChunks).toBeGreaterThan(before);
      }
    });
  }

  it('runs range kernels over every item once with parallelFor, the same as on one thread, in a grown memory', async () => {
    const rt = await ThreadedKernelRuntime.create({ threads: 3, module: fixture });
    runtimes.push(rt);
    const arena = await rt.createArena(1 << 16);
    // Allocating past the initial size grows the shared memory after the workers instantiated on it.
    const n = 100_003;
    const dst = arena.alloc(n * 4 + (4 << 20)) + (4 << 20);
    const fill = 'fill_index' as never;
    for (const [count, granule] of [[1, 1], [5, 1], [1001, 4], [n, 16]] as const) {
      arena.f32(dst, n).fill(-1);
      rt.parallelFor(arena, fill, [dst, 0.5, 3] as never, count, { granule });
      const got = arena.f32(dst, n);
      for (let i = 0; i < n; i++) if (got[i] !== (i < count ? Math.fround(i * 0.5 + 3) : -1)) throw new Error(`item ${i} of ${count}: ${got[i]}`);
    }
  });

  it('throws a kernel trap on a worker thread as a KernelThreadError in the caller and stays usable', async () => {
    const rt = await ThreadedKernelRuntime.create({ threads: 2, module: fixture });
    runtimes.push(rt);
    const arena = await rt.createArena(1 << 16);
    (arena.kernels as unknown as { mark_caller(): void }).mark_caller();
    const sink = arena.alloc(64);
    const call = () => rt.parallelFor(arena, 'trap_on_worker' as never, [sink] as never, 64);
    // On a starved machine the caller may run every item before a worker wakes (then nothing traps and no
    // worker ran a chunk): call until two calls had a worker take part, each of which must throw.
    const errors: unknown[] = [];
    for (let i = 0; i < 100 && errors.length < 2; i++) {
      const before = (rt as ThreadedKernelRuntime).workerChunks;
      try {
        call();
        expect((rt as ThreadedKernelRuntime).workerChunks).toBe(before);
      } catch (e) {
        errors.push(e);
      }
    }
    expect(errors).toHaveLength(2);
    for (const e of errors) {
      expect(e).toBeInstanceOf(KernelThreadError);
      expect((e as Error).message).toMatch(/trap_on_worker failed on a worker thread: .*unreachable/);
    }
    // The error says how large the arena is as the worker and as the caller see it (a worker with a stale view of a
    // grown shared memory would trap out of bounds where the caller does not): grown just before, both see it grown.
    arena.alloc(arena.capacityBytes + (4 << 20));
    let grown: unknown;
    for (let i = 0; i < 100 && grown === undefined; i++) {
      try {
        call();
      } catch (e) {
        grown = e;
      }
    }
    const sizes = /\(arena \d+, (\d+) bytes as that thread sees it\); (\d+) bytes on the calling thread/.exec((grown as Error).message);
    expect(sizes, (grown as Error).message).not.toBeNull();
    expect(Number(sizes![1])).toBe(arena.capacityBytes);
    expect(Number(sizes![2])).toBe(arena.capacityBytes);
    // A trap on whichever thread runs the item, then a clean call on the same runtime.
    for (const bad of [0, 17, 63]) expect(() => rt.parallelFor(arena, 'trap_at' as never, [bad] as never, 64)).toThrow(/unreachable/);
    rt.parallelFor(arena, 'trap_at' as never, [1000] as never, 64);
  });

  it('surfaces an out-of-bounds product as an error, and refuses work once closed', async () => {
    const rt = await ThreadedKernelRuntime.create({ threads: 2, minParallelWork: 0 });
    const arena = await rt.createArena(1 << 20);
    const type = ggmlTypeByName('Q8_0')!;
    const w: WeightMatrix = { arena, type, rows: 4096, cols: 256, ptr: arena.capacityBytes - 1000, rowBytes: 272 };
    const act = arena.alloc(8 * 68);
    const out = arena.alloc(4096 * 4);
    expect(() => rt.matmul(w, act, 8 * 68, 1, out, 4096)).toThrow(/out of bounds/);
    await rt.close();
    expect(() => rt.matmul({ ...w, ptr: 0 }, act, 8 * 68, 1, out, 4096)).toThrow(/closed/);
    await expect(rt.createArena(0)).rejects.toThrow(/closed/);
  });

  it('fails to start, instead of hanging, when a worker thread dies', async () => {
    const exits = new URL('data:text/javascript,process.exit(3)');
    await expect(ThreadedKernelRuntime.create({ threads: 2, workerUrl: exits })).rejects.toThrow(/kernel worker thread .*exited \(code 3\)/);
    const broken = new URL('data:text/javascript,throw new Error("no kernels here")');
    await expect(ThreadedKernelRuntime.create({ threads: 2, workerUrl: broken })).rejects.toThrow(/no kernels here/);
  });

  it('fails a job a worker claimed and never finished after the stall timeout, saying how far it got', async () => {
    // A worker that answers its messages, then claims one chunk of the next job and never finishes it (as a thread
    // stuck in a kernel would): Ctl.Gen 0, Claim 1, Done 2, Chunks 3.
    const stuck = new URL(
      'data:text/javascript,' +
        encodeURIComponent(`import { parentPort } from 'node:worker_threads';
let ctl;
parentPort.on('message', (m) => {
  if (m.kind === 'init') { ctl = new Int32Array(m.control); parentPort.postMessage({ kind: 'ready' }); return; }
  if (m.kind === 'drop-arena') return;
  parentPort.postMessage({ kind: 'arena-ready', index: m.index });
  // The first chunk of a published job it can claim (a bump of Gen for a message has none).
  for (;;) {
    const word = Atomics.load(ctl, 1);
    if (word >>> 12 === Atomics.load(ctl, 0) && (word & 4095) < ctl[3] && Atomics.compareExchange(ctl, 1, word, word + 1) === word) break;
  }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`),
    );
    const rt = await ThreadedKernelRuntime.create({ threads: 2, minParallelWork: 0, workerUrl: stuck, stallTimeoutMs: 300, spinMicros: 0 });
    try {
      // Chunks long enough (1024 rows each) that the spinning worker claims one before the caller has taken them all.
      const arena = await rt.createArena(4 << 20);
      const type = ggmlTypeByName('F32')!;
      const w: WeightMatrix = { arena, type, rows: 8192, cols: 64, ptr: arena.alloc(8192 * 64 * 4), rowBytes: 256 };
      const x = arena.alloc(64 * 4);
      const out = arena.alloc(8192 * 4);
      // Until the worker has taken a chunk (on a loaded machine the caller may take them all before it is scheduled).
      let message = '';
      for (const until = performance.now() + 10_000; !message && performance.now() < until; ) {
        try {
          rt.matmul(w, x, 256, 1, out, 8192);
        } catch (err) {
          message = (err as Error).message;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      const m = /did not finish within 300 ms \((\d+) of (\d+) chunks claimed, (\d+) done/.exec(message);
      expect(m, message).not.toBeNull();
      expect(Number(m![1])).toBe(Number(m![2]));
      expect(Number(m![3])).toBe(Number(m![2]) - 1);
      expect(() => rt.matmul(w, x, 256, 1, out, 8192)).toThrow(/did not finish/);
    } finally {
      await rt.close();
    }
  });

  it('lets a process exit with or without close()', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kernels-exit-'));
    try {
      const src = fileURLToPath(new URL('../src/index.ts', import.meta.url));
      for (const closeIt of [true, false]) {
        const script = join(dir, `exit-${closeIt}.mts`);
        writeFileSync(
          script,
          `import { createKernelRuntime, ggmlTypeByName } from ${JSON.stringify(src)};
const rt = await createKernelRuntime({ threads: 2, minParallelWork: 0 });
const arena = await rt.createArena(1 << 20);
const type = ggmlTypeByName('F32')!;
const w = { arena, type, rows: 256, cols: 64, ptr: arena.alloc(256 * 64 * 4), rowBytes: 256 };
const x = arena.alloc(64 * 4);
const out = arena.alloc(256 * 4);
rt.matmul(w, x, 256, 1, out, 256);
${closeIt ? 'await rt.close();' : ''}
console.log('threads', rt.threads);
`,
        );
        const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
        const r = spawnSync(process.execPath, [tsx, script], { timeout: 30_000, encoding: 'utf8' });
        expect(r.error, r.stderr).toBeUndefined();
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toContain('threads 2');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
