import { KernelArena } from './kernel-arena.js';
import { loadKernels, type KernelIsa } from './kernel-isa.js';
import type { GgmlTypeInfo } from './ggml-types.js';
import type { ParallelForOptions, RangeKernelArgs, RangeKernelName } from './range-kernel.js';

/** A weight matrix [rows, cols] (rows = outputs, as GGUF stores a linear layer) in its file encoding, in an arena. */
export interface WeightMatrix {
  arena: KernelArena;
  type: GgmlTypeInfo;
  rows: number;
  cols: number;
  /** Offset of row 0; rows are contiguous, each `rowBytes` long. */
  ptr: number;
  rowBytes: number;
}

export class UnsupportedKernelTypeError extends Error {
  override name = 'UnsupportedKernelTypeError';
  constructor(readonly typeName: string) {
    super(`the kernels have no product for ${typeName} weights`);
  }
}

/**
 * Where the kernels run: the arenas (WebAssembly memories) and the threads that work on them. The engine asks it for
 * arenas and products; how the work is split over threads is its business. Every product gives each output the
 * same value whatever the thread count or batch size.
 */
export interface KernelRuntime {
  readonly threads: number;
  /** The build of the kernels it runs (kernel-isa.ts), for reports: "relaxed-simd" or "simd128". */
  readonly isa: KernelIsa;
  /** A new arena able to grow to 4 GiB; `initialBytes` is reserved at once. */
  createArena(initialBytes: number): Promise<KernelArena>;
  /** Forgets an arena (its memory is freed once nothing refers to it); its offsets become invalid. */
  releaseArena(arena: KernelArena): Promise<void>;
  /** The activation format (see assembly/activation.ts) a weight type multiplies with; throws for an unsupported type. */
  actFormat(type: GgmlTypeInfo): number;
  /** out[i·outStride + r] = W[r] · act[i] for every row r of W and activation rows i < nAct (both in w.arena). */
  matmul(w: WeightMatrix, act: number, actBytes: number, nAct: number, out: number, outStride: number): void;
  /**
   * Runs `kernel(...args, start, end)` over [0, count) split into chunks over the threads, and returns when every
   * chunk is done (a kernel's failure on any thread is thrown here). Pointers in `args` are offsets in `arena`.
   */
  parallelFor<K extends RangeKernelName>(arena: KernelArena, kernel: K, args: RangeKernelArgs<K>, count: number, options?: ParallelForOptions): void;
  /** Stops the threads; arenas become unusable. */
  close(): Promise<void>;
}

type NumericKernel = (...args: number[]) => unknown;

/** One thread: the caller's. */
export class SerialKernelRuntime implements KernelRuntime {
  readonly threads = 1;
  private readonly arenas: KernelArena[] = [];

  private constructor(
    private readonly module: WebAssembly.Module,
    readonly isa: KernelIsa,
  ) {}

  /** `isa` asks for a build (default: the one kernel-isa.ts chooses for this runtime). */
  static async create(isa?: KernelIsa): Promise<SerialKernelRuntime> {
    const k = await loadKernels(isa);
    return new SerialKernelRuntime(k.module, k.isa);
  }

  async createArena(initialBytes: number): Promise<KernelArena> {
    const arena = KernelArena.create(this.module, initialBytes, this.arenas.length);
    this.arenas.push(arena);
    return arena;
  }

  async releaseArena(arena: KernelArena): Promise<void> {
    const i = this.arenas.indexOf(arena);
    if (i >= 0) this.arenas.splice(i, 1);
  }

  actFormat(type: GgmlTypeInfo): number {
    const probe = this.arenas[0] ?? KernelArena.create(this.module, 0, -1);
    const fmt = probe.kernels.act_format(type.id);
    if (fmt < 0) throw new UnsupportedKernelTypeError(type.name);
    return fmt;
  }

  matmul(w: WeightMatrix, act: number, actBytes: number, nAct: number, out: number, outStride: number): void {
    w.arena.kernels.matmul(w.type.id, w.ptr, w.cols, 0, w.rows, act, actBytes, nAct, out, outStride);
  }

  parallelFor<K extends RangeKernelName>(arena: KernelArena, kernel: K, args: RangeKernelArgs<K>, count: number): void {
    if (count <= 0) return;
    (arena.kernels[kernel] as unknown as NumericKernel)(...(args as number[]), 0, count);
  }

  async close(): Promise<void> {
    this.arenas.length = 0;
  }
}
