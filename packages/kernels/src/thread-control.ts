/**
 * The control block shared by the calling thread and the kernel worker threads (one SharedArrayBuffer), and the pure
 * chunk planning of a split. Both sides import this file, so it stays free of platform APIs.
 *
 * A dispatch publishes one job: the caller writes the job words and arguments, resets the claim word to
 * (generation, next chunk 0), stores the generation and notifies. Every thread — the caller included — then claims
 * chunks with a compare-and-swap on the claim word and runs the kernel on [start, end) of each. A chunk is claimed
 * only while the claim word still carries the generation a thread read the job under, and the caller rewrites the job
 * only after every chunk is done, so a thread that wakes late can never run a stale or torn job: it finds no chunk.
 * The caller never waits for a worker to wake, only for claimed chunks to finish.
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
