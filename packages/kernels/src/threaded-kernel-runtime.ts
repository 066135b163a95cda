import { KernelArena } from './kernel-arena.js';
import { loadKernels, type KernelIsa } from './kernel-isa.js';
import { UnsupportedKernelTypeError, type KernelRuntime, type WeightMatrix } from './kernel-runtime.js';
import type { ParallelForOptions, RangeKernelArgs, RangeKernelName } from './range-kernel.js';
import type { GgmlTypeInfo } from './ggml-types.js';
import type { FromWorker } from './kernel-worker.js';
import { spawnKernelThread, type KernelThread, type SpawnKernelThread } from './thread-host.js';
import {
  CONTROL_BYTES,
  Ctl,
  GEN_MASK,
  MAX_KERNEL_ARGS,
  claimChunk,
  claimNext,
  controlViews,
  kernelFunctionNames,
  planChunkSize,
  publishJob,
  readError,
  recordError,
  type ControlViews,
} from './thread-control.js';

/** A kernel failed on some thread, a thread died, or the runtime is closed. */
export class KernelThreadError extends Error {
  override name = 'KernelThreadError';
}

export interface ThreadedKernelRuntimeOptions {
  /** Threads in all, the caller's included (≥ 2: one thread is SerialKernelRuntime). */
  threads: number;
  /** The worker script, when the default beside this file does not fit (a browser bundle). */
  workerUrl?: URL;
  /** How long an idle worker spins before it sleeps, µs (a decode step issues products µs apart). Default 50. */
  spinMicros?: number;
  /** Products with fewer multiply-adds than this run on the caller alone (a dispatch costs µs). Default 2^17. */
  minParallelWork?: number;
  /** A dispatch that does not finish in this long fails instead of hanging (a thread died mid-job). Default 120 s. */
  stallTimeoutMs?: number;
  /** The kernel module (default: the built kernels); tests pass their own. */
  module?: WebAssembly.Module;
  /** Which build to run (default: kernel-isa.ts's choice); with `module`, which build that module is. */
  isa?: KernelIsa;
  spawn?: SpawnKernelThread;
}

type NumericKernel = (...args: number[]) => unknown;

interface PendingArena {
  remaining: number;
  resolve(): void;
  reject(err: Error): void;
}

/** Can this thread block in Atomics.wait? (A browser's main thread cannot: it spins instead.) */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kernels on N threads: N-1 workers plus the calling thread, all on the same shared memories. Calls stay synchronous
 * (as in SerialKernelRuntime): a product publishes a job in the control block, the caller claims chunks of it like
 * any worker, then waits for the chunks others took. Every output is computed whole by one thread with the same
 * kernel, so results are bit-identical for any thread count. See thread-control.ts for the protocol.
 */
export class ThreadedKernelRuntime implements KernelRuntime {
  private readonly arenas: KernelArena[] = [];
  private readonly v: ControlViews;
  private readonly fnIndex = new Map<string, number>();
  private readonly pendingArenas = new Map<number, PendingArena>();
  private readonly blocking = canBlock();
  private readonly spinMicros: number;
  private readonly minParallelWork: number;
  private readonly stallTimeoutMs: number;
  private probe: KernelArena | undefined;
  private workers: KernelThread[] = [];
  private gen = 0;
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    readonly threads: number,
    private readonly module: WebAssembly.Module,
    readonly isa: KernelIsa,
    options: ThreadedKernelRuntimeOptions,
  ) {
    this.v = controlViews(new SharedArrayBuffer(CONTROL_BYTES));
    kernelFunctionNames(module).forEach((n, i) => this.fnIndex.set(n, i));
    this.spinMicros = options.spinMicros ?? 50;
    this.minParallelWork = options.minParallelWork ?? 1 << 17;
    this.stallTimeoutMs = options.stallTimeoutMs ?? 120_000;
  }

  /** Split dispatches so far, and the time the caller spent waiting for chunks other threads held (diagnostics). */
  readonly stats = { dispatches: 0, waitMs: 0 };

  /** Chunks the worker threads ran so far (the rest ran on the calling thread). */
  get workerChunks(): number {
    return Atomics.load(this.v.ctl, Ctl.WorkerChunks);
  }

  /** Starts threads-1 workers; resolves when all are ready. */
  static async create(options: ThreadedKernelRuntimeOptions): Promise<ThreadedKernelRuntime> {
    const threads = Math.floor(options.threads);
    if (!(threads >= 2)) throw new RangeError(`a threaded kernel runtime needs at least 2 threads, not ${options.threads}`);
    const k = options.module ? { module: options.module, isa: options.isa ?? 'simd128' } : await loadKernels(options.isa);
    const rt = new ThreadedKernelRuntime(threads, k.module, k.isa, options);
    const spawn = options.spawn ?? spawnKernelThread;
    try {
      const workers = await Promise.all(Array.from({ length: threads - 1 }, () => spawn(options.workerUrl)));
      rt.workers = workers;
      await rt.awaitWorkers(Promise.all(workers.map((w) => rt.start(w))));
    } catch (err) {
      await rt.close();
      throw err;
    }
    return rt;
  }

  private start(w: KernelThread): Promise<void> {
    return new Promise((resolve, reject) => {
      let ready = false;
      w.listen(
        (m: FromWorker) => {
          if (m.kind === 'ready') {
            ready = true;
            resolve();
          } else if (m.kind === 'arena-ready') {
            const p = this.pendingArenas.get(m.index);
            if (p && --p.remaining === 0) {
              this.pendingArenas.delete(m.index);
              p.resolve();
            }
          } else this.fail(new KernelThreadError(`a kernel worker failed: ${m.message}`));
          if (m.kind === 'failed' && !ready) reject(new KernelThreadError(`a kernel worker failed to start: ${m.message}`));
        },
        (err) => {
          if (this.closed) return;
          const e = new KernelThreadError(`a kernel worker thread failed: ${err.message}`);
          this.fail(e);
          if (!ready) reject(e);
        },
      );
      w.post({ kind: 'init', control: this.v.ctl.buffer as SharedArrayBuffer, module: this.module, spinMicros: this.spinMicros });
    });
  }

  /** A dead or failed worker makes the runtime unusable: later calls throw instead of waiting on it. */
  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pendingArenas.values()) p.reject(err);
    this.pendingArenas.clear();
  }

  private check(): void {
    if (this.closed) throw new KernelThreadError('the kernel runtime is closed');
    if (this.failure) throw this.failure;
  }

  async createArena(initialBytes: number): Promise<KernelArena> {
    this.check();
    const index = this.arenas.length; // released slots are not reused: a worker may still be dropping one
    const arena = KernelArena.create(this.module, initialBytes, index);
    this.arenas.push(arena);
    const ready = new Promise<void>((resolve, reject) => this.pendingArenas.set(index, { remaining: this.workers.length, resolve, reject }));
    for (const w of this.workers) w.post({ kind: 'arena', index, memory: arena.memory });
    // Workers spinning or sleeping in their job loop leave it to read the message.
    Atomics.add(this.v.ctl, Ctl.MsgSeq, 1);
    this.wake();
    await this.awaitWorkers(ready);
    return arena;
  }

  async releaseArena(arena: KernelArena): Promise<void> {
    if (this.closed || arena.index < 0 || this.arenas[arena.index] !== arena) return;
    // The slot stays (indexes are the workers' names for arenas); the memory goes once no thread refers to it.
    delete this.arenas[arena.index];
    for (const w of this.workers) w.post({ kind: 'drop-arena', index: arena.index });
    Atomics.add(this.v.ctl, Ctl.MsgSeq, 1);
    this.wake();
  }

  /** Keeps the process alive while it waits on the workers, and only then (see KernelThread.keepAlive). */
  private async awaitWorkers<T>(p: Promise<T>): Promise<T> {
    for (const w of this.workers) w.keepAlive(true);
    try {
      return await p;
    } finally {
      for (const w of this.workers) w.keepAlive(false);
    }
  }

  private wake(): void {
    this.gen = (this.gen + 1) & GEN_MASK;
    Atomics.store(this.v.ctl, Ctl.Gen, this.gen);
    Atomics.notify(this.v.ctl, Ctl.Gen);
  }

  actFormat(type: GgmlTypeInfo): number {
    this.probe ??= KernelArena.create(this.module, 0, -1);
    const fmt = this.probe.kernels.act_format(type.id);
    if (fmt < 0) throw new UnsupportedKernelTypeError(type.name);
    return fmt;
  }

  matmul(w: WeightMatrix, act: number, actBytes: number, nAct: number, out: number, outStride: number): void {
    const args = [w.type.id, w.ptr, w.cols, act, actBytes, nAct, out, outStride];
    // Rows in groups the kernels unroll over (4; 16 for big matrices, so chunks stay cache-line and unroll friendly).
    const granule = w.rows >= 1024 ? 16 : 4;
    const work = w.rows * w.cols * Math.max(1, nAct);
    if (work < this.minParallelWork || w.rows < 2 * granule) {
      this.check();
      w.arena.kernels.matmul(w.type.id, w.ptr, w.cols, 0, w.rows, act, actBytes, nAct, out, outStride);
      return;
    }
    this.dispatch(w.arena, 'matmul', args, 3, w.rows, planChunkSize(w.rows, this.threads, granule));
  }

  parallelFor<K extends RangeKernelName>(arena: KernelArena, kernel: K, args: RangeKernelArgs<K>, count: number, options: ParallelForOptions = {}): void {
    if (count <= 0) return;
    const a = args as number[];
    if (count < (options.minCount ?? 2)) {
      this.check();
      (arena.kernels[kernel] as unknown as NumericKernel)(...a, 0, count);
      return;
    }
    this.dispatch(arena, kernel, a, a.length, count, planChunkSize(count, this.threads, options.granule ?? 1));
  }

  /** Runs `kernel` with (start, end) inserted at `rangeAt` in `args`, over [0, count) in chunks of `chunk`. */
  private dispatch(arena: KernelArena, kernel: string, args: number[], rangeAt: number, count: number, chunk: number): void {
    this.check();
    if (arena.index < 0 || this.arenas[arena.index] !== arena) throw new RangeError('this arena does not belong to this kernel runtime');
    if (args.length > MAX_KERNEL_ARGS) throw new RangeError(`a kernel dispatch takes at most ${MAX_KERNEL_ARGS} arguments besides its range`);
    const fnIndex = this.fnIndex.get(kernel);
    const fn = (arena.kernels as unknown as Record<string, NumericKernel | undefined>)[kernel];
    if (fnIndex === undefined || typeof fn !== 'function') throw new RangeError(`the kernels export no function ${kernel}`);
    const chunks = Math.ceil(count / chunk);
    this.stats.dispatches++;
    const call = args.slice();
    call.splice(rangeAt, 0, 0, count);
    if (chunks <= 1) {
      fn(...call);
      return;
    }

    const { ctl } = this.v;
    const gen = (this.gen = (this.gen + 1) & GEN_MASK);
    publishJob(this.v, gen, { arena: arena.index, fn: fnIndex, args, rangeAt, count, chunkSize: chunk, chunks });

    // Workers spin for spinMicros after a job, so the products of a decode step find them awake. Waking a sleeping
    // one costs the caller a futex wake; on this busy 2-core VM the woken worker often preempts the caller on its own
    // core for its chunks plus its spin (~70 µs with the default spin; scripts/bench-threads.ts measures it), which
    // is why the spin stays short and small products (minParallelWork) never dispatch.
    if (Atomics.load(ctl, Ctl.Sleepers) > 0) Atomics.notify(ctl, Ctl.Gen);

    // The caller's share: claim chunks like any worker.
    let own: unknown;
    for (;;) {
      const k = claimChunk(ctl, gen, chunks);
      if (k < 0) break;
      if (Atomics.load(ctl, Ctl.Err) === 0) {
        call[rangeAt] = k * chunk;
        call[rangeAt + 1] = Math.min(count, (k + 1) * chunk);
        try {
          fn(...call);
        } catch (err) {
          own ??= err;
          recordError(this.v, `${kernel} failed: ${(err as Error)?.message ?? String(err)}`);
        }
      }
      Atomics.add(ctl, Ctl.Done, 1);
    }
    this.awaitChunks(chunks);
    if (own !== undefined) throw own;
    if (Atomics.load(ctl, Ctl.Err) !== 0) throw new KernelThreadError(`${readError(this.v)}; ${arena.capacityBytes} bytes on the calling thread`);
  }

  /** Waits for the chunks other threads claimed: spins briefly, then blocks (where this thread may). */
  private awaitChunks(chunks: number): void {
    const { ctl } = this.v;
    if (Atomics.load(ctl, Ctl.Done) === chunks) return;
    const t0 = performance.now();
    try {
      this.spinUntilDone(chunks, t0);
    } finally {
      this.stats.waitMs += performance.now() - t0;
    }
  }

  private spinUntilDone(chunks: number, t0: number): void {
    const { ctl } = this.v;
    const spinUntil = t0 + 0.2;
    for (let i = 0; ; i++) {
      const done = Atomics.load(ctl, Ctl.Done);
      if (done === chunks) return;
      if ((i & 63) !== 63) continue;
      const now = performance.now();
      if (now > spinUntil && this.blocking) Atomics.wait(ctl, Ctl.Done, done, 20);
      if (now - t0 > this.stallTimeoutMs) {
        // Which of the two ways it stalled: a chunk claimed and never finished (a thread died or hangs in a kernel),
        // or every chunk claimed and finished with Done off the count.
        const claimed = claimNext(Atomics.load(ctl, Ctl.Claim));
        const state = `${claimed} of ${chunks} chunks claimed, ${Atomics.load(ctl, Ctl.Done)} done, ${Atomics.load(ctl, Ctl.Sleepers)} workers asleep`;
        const err = new KernelThreadError(`a kernel job did not finish within ${this.stallTimeoutMs} ms (${state}): a worker thread may have died`);
        this.fail(err);
        throw err;
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.v.ctl, Ctl.Shutdown, 1);
    this.wake();
    const workers = this.workers;
    this.workers = [];
    this.fail(new KernelThreadError('the kernel runtime is closed'));
    await Promise.all(workers.map((w) => w.terminate()));
    this.arenas.length = 0;
  }
}
