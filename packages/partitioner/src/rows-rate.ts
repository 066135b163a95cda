/** Rows at which a product reaches the device's batched (prefill) rate: its profile times a 64-row product. */
const FULL_ROWS = 64;

/**
 * FLOPs per ms of a product over `rows` rows: from the device's one-row rate (a product that streams its weights once
 * per row) to its batched rate as the rows fill up to FULL_ROWS — the rate a serving step of that many rows is priced at.
 */
export function rowsFlopsPerMs(oneRowFlopsPerMs: number, batchedFlopsPerMs: number, rows: number): number {
  const fill = Math.min(1, Math.max(0, rows - 1) / (FULL_ROWS - 1));
  return oneRowFlopsPerMs + (batchedFlopsPerMs - oneRowFlopsPerMs) * fill;
}

/**
 * FLOPs per ms of a product over `rows` rows when its time is one pass over its weights plus each row's compute,
 * t(R) = a + b·R, with a and b set by the one-row and the FULL_ROWS-row rates: the rate climbs fast and then levels
 * off, where rowsFlopsPerMs climbs in a straight line. Training micro-batches are priced with it: on this machine's
 * nodes a 19-row training micro-batch of a 768-wide model ran at about 0.85 of the 64-row rate (the straight line
 * said 0.47, and the plan's step came out 2× the measured one). Serving keeps rowsFlopsPerMs, which its
 * calibrations were measured against.
 */
export function weightPassRowsFlopsPerMs(oneRowFlopsPerMs: number, batchedFlopsPerMs: number, rows: number): number {
  const r = Math.min(FULL_ROWS, Math.max(1, rows));
  // Per FLOP of one row: b from the two rates' difference over the rows between them, a what the one-row time leaves.
  const b = Math.max(0, (FULL_ROWS / batchedFlopsPerMs - 1 / oneRowFlopsPerMs) / (FULL_ROWS - 1));
  const a = 1 / oneRowFlopsPerMs - b;
  return r / (a + b * r);
}
