/** Rows at which a product reaches the device's batched (prefill) rate: its profile times a 64-row product. */
const FULL_ROWS = 64;

/**
 * FLOPs per ms of a product over `rows` rows: from the device's one-row rate (a product that streams its weights once
 * per row) to its batched rate as the rows fill up to FULL_ROWS — the rate a serving step and a training micro-batch
 * of that many rows are priced at.
 */
export function rowsFlopsPerMs(oneRowFlopsPerMs: number, batchedFlopsPerMs: number, rows: number): number {
  const fill = Math.min(1, Math.max(0, rows - 1) / (FULL_ROWS - 1));
  return oneRowFlopsPerMs + (batchedFlopsPerMs - oneRowFlopsPerMs) * fill;
}
