import type { KernelExports } from './kernel-exports.js';

/** Brand of range kernels (a type only: nothing at run time). */
declare const rangeKernelBrand: unique symbol;

/**
 * A kernel export that runtimes may split over threads: its last two parameters are a range [start, end) of
 * independent items (rows, (row, head) pairs, …), and each item's output depends only on the item and the other
 * arguments, so any split gives the same bits. Declare such an export in KernelExports as
 * `name: RangeKernel<[a: number, b: number]>` (its arguments before the range); only those can be passed to
 * KernelRuntime.parallelFor, so a kernel whose last two parameters mean something else cannot be split by mistake.
 */
export type RangeKernel<A extends number[]> = ((...args: [...A, start: number, end: number]) => void) & {
  readonly [rangeKernelBrand]: true;
};

/** The KernelExports declared as RangeKernel. */
export type RangeKernelName = {
  [K in keyof KernelExports]: KernelExports[K] extends { readonly [rangeKernelBrand]: true } ? K : never;
}[keyof KernelExports];

/** A range kernel's arguments before its (start, end). */
export type RangeKernelArgs<K extends RangeKernelName> = KernelExports[K] extends RangeKernel<infer A> ? A : never;

export interface ParallelForOptions {
  /** Chunk boundaries fall on multiples of this (a kernel's unroll width); 1 by default. */
  granule?: number;
  /** Below this many items the call runs on the calling thread alone (a dispatch costs µs); 2 by default. */
  minCount?: number;
}
