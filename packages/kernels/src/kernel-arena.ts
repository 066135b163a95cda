import { instantiateKernels, type KernelExports } from './kernel-exports.js';
import { SHARED_MEMORY_AVAILABLE } from './kernel-module.js';

const PAGE = 65536;
/** Below __heap_base: the f16 table (256 KiB) and the kernels' static data; reserved in every new memory. */
export const KERNEL_STATIC_BYTES = 1 << 20;
/** A WebAssembly memory is at most 4 GiB (wasm32); one page is kept back so that no offset reaches 2^32. */
export const MAX_ARENA_BYTES = 65535 * PAGE;

export class ArenaFullError extends Error {
  override name = 'ArenaFullError';
  constructor(
    readonly requested: number,
    readonly capacity: number,
  ) {
    super(`a kernel arena cannot hold ${requested} more bytes (at most ${capacity} bytes per WebAssembly memory)`);
  }
}

interface Block {
  ptr: number;
  bytes: number;
}

/**
 * One WebAssembly memory with the kernels instantiated on it: weights, KV caches and scratch space of a group of
 * layers live here, so the kernels reach them by offset. A node holds as many arenas as its layers need, which lifts
 * the 4 GiB limit of a single memory. The memory is shared so that worker threads run the same kernels on it.
 *
 * Allocation is first-fit over a free list (blocks are few and large: weight matrices, caches, scratch).
 */
export class KernelArena {
  readonly kernels: KernelExports;
  private readonly free: Block[] = [];
  private readonly used = new Map<number, number>();
  private top: number;

  constructor(
    readonly module: WebAssembly.Module,
    readonly memory: WebAssembly.Memory,
    /** Index of this arena in its runtime (worker threads address arenas by it). */
    readonly index: number,
  ) {
    this.kernels = instantiateKernels(module, memory);
    this.top = align(this.kernels.heap_base(), 64);
  }

  static create(module: WebAssembly.Module, initialBytes: number, index: number): KernelArena {
    const initial = Math.ceil((initialBytes + KERNEL_STATIC_BYTES) / PAGE);
    if (initial * PAGE > MAX_ARENA_BYTES) throw new ArenaFullError(initialBytes, MAX_ARENA_BYTES);
    const memory = new WebAssembly.Memory({ initial, maximum: MAX_ARENA_BYTES / PAGE, shared: SHARED_MEMORY_AVAILABLE });
    return new KernelArena(module, memory, index);
  }

  /** Bytes handed out and not freed. */
  get usedBytes(): number {
    let n = 0;
    for (const b of this.used.values()) n += b;
    return n;
  }

  /** Bytes of the memory itself (what the process holds for this arena). */
  get capacityBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Reserves `bytes` (64-byte aligned, zero-filled only on first use of fresh memory); returns the offset. */
  alloc(bytes: number): number {
    const size = align(Math.max(bytes, 1), 64);
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i];
      if (b.bytes < size) continue;
      const ptr = b.ptr;
      if (b.bytes === size) this.free.splice(i, 1);
      else {
        b.ptr += size;
        b.bytes -= size;
      }
      this.used.set(ptr, size);
      return ptr;
    }
    const ptr = this.top;
    const end = ptr + size;
    if (end > MAX_ARENA_BYTES) throw new ArenaFullError(size, MAX_ARENA_BYTES - this.usedBytes);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    this.used.set(ptr, size);
    return ptr;
  }

  /** Returns a block from alloc() to the arena. */
  release(ptr: number): void {
    const size = this.used.get(ptr);
    if (size === undefined) throw new RangeError(`no block at offset ${ptr} in this arena`);
    this.used.delete(ptr);
    if (ptr + size === this.top) {
      this.top = ptr;
      // Fold a free block that now touches the top back into it.
      const last = this.free.findIndex((b) => b.ptr + b.bytes === this.top);
      if (last >= 0) {
        this.top = this.free[last].ptr;
        this.free.splice(last, 1);
      }
      return;
    }
    this.free.push({ ptr, bytes: size });
    this.free.sort((a, b) => a.ptr - b.ptr);
    for (let i = 0; i + 1 < this.free.length; ) {
      const a = this.free[i];
      const b = this.free[i + 1];
      if (a.ptr + a.bytes === b.ptr) {
        a.bytes += b.bytes;
        this.free.splice(i + 1, 1);
      } else i++;
    }
  }

  /** Views over the memory (made afresh each call: a grown memory has a new buffer). */
  bytes(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, n);
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
