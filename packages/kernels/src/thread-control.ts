/**
 * The control block shared by the calling thread and the kernel worker threads (one SharedArrayBuffer), and the pure
 * chunk planning of a split. Both sides import this file, so it stays free of platform APIs.
 *
 * A dispatch publishes one job (publishJob): the caller first moves the claim word to (new generation, chunk 0), then
 * writes the job words and arguments, stores the generation and notifies. Every thread — the caller included — then
 * claims chunks (claimChunk: a compare-and-swap on the claim word) and runs the kernel on [start, end) of each. A
 * chunk is claimed only while the claim word still carries the generation a thread read the job under, and no word
 * of a job is rewritten after that generation left the claim word, so a thread that wakes late can never run a stale
 * or torn job: it finds no chunk. The caller never waits for a worker to wake, only for claimed chunks to finish.
 */

/** Int32 word indices. */
export const enum Ctl {
  /** Generation of the latest job (bumped also to wake workers for pending messages). */
  Gen = 0,
  /** (generation & GEN_MASK) << CHUNK_BITS | next unclaimed chunk. */
  Claim = 1,
  /** Chunks finished (or skipped after an error) in the current job. */
  Done = 2,
  Chunks = 3,
  /** 1 when a chunk of the current job failed; ErrLen bytes of text at ERR_TEXT_OFFSET tell why. */
  Err = 4,
  ErrLen = 5,
  Shutdown = 6,
  /** Messages (arenas to instantiate) posted to every worker; a worker leaves its loop to read them. */
  MsgSeq = 7,
  Arena = 8,
  Fn = 9,
  NArgs = 10,
  /** Position of (start, end) in the kernel's arguments. */
  RangeAt = 11,
  Count = 12,
  ChunkSize = 13,
  /** Chunks run by worker threads since the start (a diagnostic: did the workers take part?). */
  WorkerChunks = 14,
  /** Workers blocked in Atomics.wait: a dispatch pays for Atomics.notify (a futex wake, µs) only when some sleep. */
  Sleepers = 15,
}

export const CHUNK_BITS = 12;
/** At most this many chunks per job (the claim word's low bits). */
export const MAX_CHUNKS = (1 << CHUNK_BITS) - 1;
export const GEN_MASK = (1 << (32 - CHUNK_BITS)) - 1;
/** Kernel arguments (Float64: exact for i32, u32 offsets up to 4 GiB and f32 scalars). */
export const MAX_KERNEL_ARGS = 16;
export const ARGS_OFFSET = 64;
export const ERR_TEXT_OFFSET = ARGS_OFFSET + MAX_KERNEL_ARGS * 8;
export const ERR_TEXT_BYTES = 1024;
export const CONTROL_BYTES = ERR_TEXT_OFFSET + ERR_TEXT_BYTES;

export interface ControlViews {
  ctl: Int32Array;
  args: Float64Array;
  errText: Uint8Array;
}

export function controlViews(sab: SharedArrayBuffer): ControlViews {
  return {
    ctl: new Int32Array(sab, 0, ARGS_OFFSET / 4),
    args: new Float64Array(sab, ARGS_OFFSET, MAX_KERNEL_ARGS),
    errText: new Uint8Array(sab, ERR_TEXT_OFFSET, ERR_TEXT_BYTES),
  };
}

export function claimWord(gen: number, next: number): number {
  return (((gen & GEN_MASK) << CHUNK_BITS) | next) | 0;
}

export function claimGen(word: number): number {
  return (word >>> CHUNK_BITS) & GEN_MASK;
}

export function claimNext(word: number): number {
  return word & MAX_CHUNKS;
}

/** A job for the threads: `fn` (an index into kernelFunctionNames) of arena `arena` over [0, count) in `chunks` chunks. */
export interface KernelJob {
  arena: number;
  fn: number;
  args: readonly number[];
  /** Position of (start, end) in the kernel's arguments. */
  rangeAt: number;
  count: number;
  chunkSize: number;
  chunks: number;
}

/**
 * Publishes job `gen`. The claim word takes the new generation before any word of the job is rewritten. Rewritten
 * first (as they were until 2026-12-07), a worker that had read the previous generation, was preempted, and then read
 * the words while the caller rewrote them — a larger chunk count among them — still found an unclaimed "chunk" of the
 * previous generation in the claim word and ran a kernel on a mix of two jobs' arguments: an out-of-bounds trap on a
 * worker, or one `Done` too many, which the caller then waited 120 s for (seen with three 2-thread nodes on 2 cores).
 */
export function publishJob(v: ControlViews, gen: number, job: KernelJob): void {
  const { ctl } = v;
  Atomics.store(ctl, Ctl.Claim, claimWord(gen, 0));
  ctl[Ctl.Arena] = job.arena;
  ctl[Ctl.Fn] = job.fn;
  ctl[Ctl.NArgs] = job.args.length;
  ctl[Ctl.RangeAt] = job.rangeAt;
  ctl[Ctl.Count] = job.count;
  ctl[Ctl.ChunkSize] = job.chunkSize;
  ctl[Ctl.Chunks] = job.chunks;
  v.args.set(job.args);
  Atomics.store(ctl, Ctl.Done, 0);
  Atomics.store(ctl, Ctl.Err, 0);
  Atomics.store(ctl, Ctl.ErrLen, 0);
  Atomics.store(ctl, Ctl.Gen, gen);
}

/**
 * Claims the next chunk of job `gen`, read as having `chunks` chunks: its index, or -1 when the claim word has moved
 * to another generation or every chunk is taken. Used by the workers and by the caller for its own share.
 */
export function claimChunk(ctl: Int32Array, gen: number, chunks: number): number {
  for (;;) {
    const word = Atomics.load(ctl, Ctl.Claim);
    if (claimGen(word) !== (gen & GEN_MASK) || claimNext(word) >= chunks) return -1;
    if (Atomics.compareExchange(ctl, Ctl.Claim, word, word + 1) === word) return claimNext(word);
  }
}

/**
 * Chunk size for splitting `count` items over `threads`: about `perThread` chunks each (so a thread slowed by a
 * neighbour on a shared core hands its work to the others), a multiple of `granule` (the kernels' unroll width),
 * and never more than MAX_CHUNKS chunks.
 */
export function planChunkSize(count: number, threads: number, granule: number, perThread = 4): number {
  if (!(count > 0)) return Math.max(1, granule);
  const g = Math.max(1, Math.floor(granule));
  let size = Math.ceil(count / Math.max(1, threads * perThread));
  size = Math.max(size, Math.ceil(count / MAX_CHUNKS));
  return Math.ceil(size / g) * g;
}

/** Writes a failure's text into the block (first failure of a job wins: the caller reports one). */
export function recordError(v: ControlViews, message: string): void {
  if (Atomics.compareExchange(v.ctl, Ctl.Err, 0, 1) !== 0) return;
  // TextEncoder does not write into shared memory in every browser: encode, then copy.
  const bytes = new TextEncoder().encode(message).subarray(0, ERR_TEXT_BYTES);
  v.errText.set(bytes);
  Atomics.store(v.ctl, Ctl.ErrLen, bytes.length);
}

export function readError(v: ControlViews): string {
  const n = Atomics.load(v.ctl, Ctl.ErrLen);
  return new TextDecoder().decode(v.errText.slice(0, n));
}

/** The kernel functions of a module in a fixed order, so that both sides name a function by its index. */
export function kernelFunctionNames(module: WebAssembly.Module): string[] {
  return WebAssembly.Module.exports(module)
    .filter((e) => e.kind === 'function')
    .map((e) => e.name);
}
