// The loop over outputs shared by the quantised products. Weight rows are taken in tiles, and each activation row
// meets a whole tile while it sits in L1: a batch (prefill) then streams its activations once per tile instead of
// once per weight row. Every output is still computed by the type's row product alone, so it has the same bits
// whatever the tile, the row range or the batch.
//
// The loops are generic over a class R of the type's row products, called on changetype<R>(0) (the pattern of the
// layout classes): an @final @unmanaged class whose methods rows (a RowDot), row4 (a RowDot4) and, where the relaxed
// build uses them, row8, row9 and row2 (RowDot8s) each call a plain (not @inline) function of the type. Binaryen inlines the method,
// so the loops, inlined into each type's matmul, call that function directly: one per type, compiled as alone
// (build-wasm.mjs keeps Binaryen from inlining it into the loops, which would change their code size and speed).
// A method that held the product itself compiled to another body: Binaryen drops its unused this and optimises again.

import { hsum } from '../simd';

/**
 * W[r]·act for weight rows [r0, r1) (rowBytes apart from w) and one prepared activation row (at ad) of nb blocks,
 * each stored at out + 4r: R's rows. The loop over rows is in the product, not here: a call per row cost ~4 ns, ~10 %
 * of a 1024-wide Q4_K row (CPU time: Q4_K −3.5 %, Q8_0 −3 to −7 % on 4096 × 1024, the other types ±1 %).
 */
export type RowDot = (w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize) => void;

/**
 * The same product for four activation rows at once (at a0..a3, outputs at o0..o3), R's row4: the weights are unpacked
 * once for the four. It must give each output the bits RowDot gives it (same float operations in the same order; the
 * integer sums are exact in any order) — so a row may also be passed twice, and its slot written twice with the same
 * bits.
 */
export type RowDot4 = (wr: usize, a0: usize, a1: usize, a2: usize, a3: usize, nb: i32, o0: usize, o1: usize, o2: usize, o3: usize) => void;

/**
 * The same product for eight consecutive activation rows (at a0, a0 + ab, …; outputs at o0, o0 + outStep, …), R's
 * row8 — or nine, R's row9, or two, R's row2 — with each output's bits exactly those RowDot gives it.
 */
export type RowDot8 = (wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize) => void;

/**
 * The row count of a RowDot8 call, a type parameter of the products (a constant once inlined): eight rows; nine — a
 * row that would be left single joins a group instead of paying a single row's unpacking (a single row costs about
 * twice a grouped one); or two, where two rows would be left single.
 */
@final @unmanaged export class EightRows {
  // @ts-ignore: decorator
  @inline count(): i32 { return 8; }
}
@final @unmanaged export class NineRows {
  // @ts-ignore: decorator
  @inline count(): i32 { return 9; }
}
@final @unmanaged export class TwoRows {
  // @ts-ignore: decorator
  @inline count(): i32 { return 2; }
}

/**
 * A RowDot8's end: the first n (2, 8 or 9) of its rows' float sums g0..g8, each reduced to its output at o0 + k·outStep.
 * n is a constant once inlined, so the unused rows' stores are gone.
 */
// @ts-ignore: decorator
@inline export function storeRowSums(n: i32, o0: usize, outStep: usize, g0: v128, g1: v128, g2: v128, g3: v128, g4: v128, g5: v128, g6: v128, g7: v128, g8: v128): void {
  store<f32>(o0, hsum(g0));
  store<f32>(o0 + outStep, hsum(g1));
  if (n > 2) {
    store<f32>(o0 + 2 * outStep, hsum(g2));
    store<f32>(o0 + 3 * outStep, hsum(g3));
    store<f32>(o0 + 4 * outStep, hsum(g4));
    store<f32>(o0 + 5 * outStep, hsum(g5));
    store<f32>(o0 + 6 * outStep, hsum(g6));
    store<f32>(o0 + 7 * outStep, hsum(g7));
  }
  if (n > 8) store<f32>(o0 + 8 * outStep, hsum(g8));
}

/** Weight rows per tile: 16 rows of 4096 values are 37–74 KiB of 4–8-bit weights (L2), the activation row stays in L1. */
const TILE: i32 = 16;

/**
 * out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) (rowBytes apart, nb blocks each) and activation
 * rows [0, nAct) (actBytes apart), with R's rows and row4: batches taken four activation rows at a time (restRows).
 */
// @ts-ignore: decorator
@inline export function matmulRows4<R>(w: usize, rowBytes: usize, nb: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const outStep = <usize>outStride << 2;
  const ab = <usize>actBytes;
  for (let t0 = row0; t0 < row1; t0 += TILE) {
    const t1 = min(t0 + TILE, row1);
    restRows<R>(w, rowBytes, nb, t0, t1, act, ab, 0, nAct, out, outStep);
  }
}

/**
 * matmulRows4 with batches taken eight activation rows at a time first (R's row8: each weight block unpacked once for
 * eight rows; a row that would be left single joins the last group, R's row9; two left single go together, R's
 * row2), the rest as matmulRows4 takes them. Only the
 * relaxed build's products have a row8: its eight integer accumulators, the unpacked weights and the activations fit
 * x64's 16 vector registers; SIMD128's widened ones do not.
 */
// @ts-ignore: decorator
@inline export function matmulRows8<R>(w: usize, rowBytes: usize, nb: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const rows = changetype<R>(0);
  const outStep = <usize>outStride << 2;
  const ab = <usize>actBytes;
  // Rows that restRows would take one by one (one or two after the groups of four; three go through row4) join
  // groups of eight, one a group, as long as there are groups.
  const singles = nAct & 3;
  const ninths = singles == 3 ? 0 : min(singles, nAct >> 3);
  const eights = ((nAct >> 3) - ninths) << 3;
  const grouped = eights + ninths * 9;
  // Two rows still left single (a batch of 2 or 6) go through R's row2 together.
  const pairEnd = ((nAct - grouped) & 3) == 2 ? nAct - 2 : nAct;
  for (let t0 = row0; t0 < row1; t0 += TILE) {
    const t1 = min(t0 + TILE, row1);
    for (let i = 0; i < eights; i += 8) {
      const a0 = act + <usize>i * ab, o0 = out + <usize>i * outStep;
      for (let r = t0; r < t1; r++) rows.row8(w + <usize>r * rowBytes, a0, ab, nb, o0 + (<usize>r << 2), outStep);
    }
    for (let i = eights; i < grouped; i += 9) {
      const a0 = act + <usize>i * ab, o0 = out + <usize>i * outStep;
      for (let r = t0; r < t1; r++) rows.row9(w + <usize>r * rowBytes, a0, ab, nb, o0 + (<usize>r << 2), outStep);
    }
    restRows<R>(w, rowBytes, nb, t0, t1, act, ab, grouped, pairEnd, out, outStep);
    if (pairEnd < nAct) {
      const a0 = act + <usize>pairEnd * ab, o0 = out + <usize>pairEnd * outStep;
      for (let r = t0; r < t1; r++) rows.row2(w + <usize>r * rowBytes, a0, ab, nb, o0 + (<usize>r << 2), outStep);
    }
  }
}

/**
 * Weight rows [t0, t1) against activation rows [i0, nAct), four at a time. Three rows left over also go through
 * row4 — the last row repeated, or after a full group the last four rows, recomputing one — one unpacking of the
 * weights instead of three (CPU time, 16384 × 1024: three rows 23–29 % faster on Q4_K, Q6_K and Q8_0, seven 9–13 %).
 * Two rows left over stay single: padded to four they were slower on Q4_K, the type whose batches cost least.
 */
// @ts-ignore: decorator
@inline function restRows<R>(w: usize, rowBytes: usize, nb: i32, t0: i32, t1: i32, act: usize, ab: usize, i0: i32, nAct: i32, out: usize, outStep: usize): void {
  const full = i0 + ((nAct - i0) & ~3);
  for (let i = i0; i < full; i += 4) fourRows<R>(w, rowBytes, nb, t0, t1, act + <usize>i * ab, ab, out + <usize>i * outStep, outStep, 1, 2, 3);
  if (((nAct - i0) & 3) == 3) {
    // The last four rows (or, in a batch of three, rows 0, 1, 2, 2); j clamps to the last row.
    const first = nAct >= 4 ? nAct - 4 : 0;
    const last = nAct - 1;
    fourRows<R>(w, rowBytes, nb, t0, t1, act + <usize>first * ab, ab, out + <usize>first * outStep, outStep, min(first + 1, last) - first, min(first + 2, last) - first, min(first + 3, last) - first);
  } else {
    const rows = changetype<R>(0);
    for (let i = full; i < nAct; i++) {
      const ad = act + <usize>i * ab;
      const o = out + <usize>i * outStep;
      rows.rows(w, rowBytes, t0, t1, ad, nb, o);
    }
  }
}

/** Weight rows [t0, t1) against the activation rows at a0 and a0 + j·ab (j = 1, 2, 3 as given), outputs alike. */
// @ts-ignore: decorator
@inline function fourRows<R>(w: usize, rowBytes: usize, nb: i32, t0: i32, t1: i32, a0: usize, ab: usize, o0: usize, outStep: usize, j1: i32, j2: i32, j3: i32): void {
  const rows = changetype<R>(0);
  const a1 = a0 + <usize>j1 * ab, a2 = a0 + <usize>j2 * ab, a3 = a0 + <usize>j3 * ab;
  for (let r = t0; r < t1; r++) {
    const o = o0 + (<usize>r << 2);
    rows.row4(w + <usize>r * rowBytes, a0, a1, a2, a3, nb, o, o + <usize>j1 * outStep, o + <usize>j2 * outStep, o + <usize>j3 * outStep);
  }
}
