import type { LogitsWanted, ShardInput } from './forward-shard.js';
import type { KvCache } from './kv-cache.js';

/** A request's rows in a batch, with where its results go. */
export interface Segment {
  input: ShardInput;
  cache: KvCache;
  /** Cache length before the batch: the position of its first row. */
  start: number;
  n: number;
  logits: LogitsWanted;
  logitRows: number;
  out: Float32Array;
}

/** The rows [r0, r0 + rows) of a segment that one pass computes. */
export interface Part {
  seg: Segment;
  r0: number;
  rows: number;
}

/** A row of the pass whose logits are computed, and where they go. */
interface LogitRow {
  row: number;
  dst: Float32Array;
}

/** The rows of one pass, row by row: whose cache each row attends over, at which position, and which need logits. */
export interface PassRows {
  parts: readonly Part[];
  count: number;
  cache: KvCache[];
  pos: number[];
  /** Positions the longest row attends over (the scores buffer's width). */
  positions: number;
  /** Rows that need logits (on the last shard): every row of an allLogits request, else a request's last position. */
  logits: LogitRow[];
}

export function passRows(parts: readonly Part[], isLast: boolean, vocabSize: number): PassRows {
  const cache: KvCache[] = [];
  const pos: number[] = [];
  for (const p of parts) {
    for (let i = 0; i < p.rows; i++) {
      cache.push(p.seg.cache);
      pos.push(p.seg.start + p.r0 + i);
    }
  }
  const logits: LogitRow[] = [];
  if (isLast) {
    let row = 0;
    for (const p of parts) {
      for (let i = 0; i < p.rows; i++, row++) {
        const r = p.r0 + i;
        if (p.seg.logits === 'all') logits.push({ row, dst: p.seg.out.subarray(r * vocabSize, (r + 1) * vocabSize) });
        else if (p.seg.logits === 'last' && r === p.seg.n - 1) logits.push({ row, dst: p.seg.out });
      }
    }
  }
  return { parts, count: cache.length, cache, pos, positions: Math.max(...pos) + 1, logits };
}

/** Copies each part's rows of `src` (rows of `width` floats, in pass order) into its segment's output. */
export function copyRowsOut(parts: readonly Part[], src: Float32Array, width: number, only?: LogitsWanted): void {
  let row = 0;
  for (const p of parts) {
    if (only === undefined || p.seg.logits === only) p.seg.out.set(src.subarray(row * width, (row + p.rows) * width), p.r0 * width);
    row += p.rows;
  }
}
