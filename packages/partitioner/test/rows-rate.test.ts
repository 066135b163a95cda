import { describe, expect, it } from 'vitest';
import { rowsFlopsPerMs, weightPassRowsFlopsPerMs } from '../src/rows-rate.js';

describe('a product\'s rate over its rows', () => {
  // This machine's node profile (one thread): 12.5 GFLOP/s one row, 48.8 at 64 rows.
  const one = 12.45e6;
  const full = 48.82e6;

  it('a pass over the weights plus each row: the profile\'s rates at 1 and 64 rows, levelling off between', () => {
    expect(weightPassRowsFlopsPerMs(one, full, 1)).toBeCloseTo(one, 3);
    expect(weightPassRowsFlopsPerMs(one, full, 64)).toBeCloseTo(full, 3);
    expect(weightPassRowsFlopsPerMs(one, full, 200)).toBeCloseTo(full, 3);
    // A 19-row micro-batch near the batched rate (measured about 0.85 of it), where the straight line says under half.
    expect(weightPassRowsFlopsPerMs(one, full, 19) / full).toBeGreaterThan(0.8);
    expect(rowsFlopsPerMs(one, full, 19) / full).toBeLessThan(0.5);
    // Each row more costs the same time: the rate never falls as rows are added, and its time is a straight line.
    const time = (r: number) => r / weightPassRowsFlopsPerMs(one, full, r);
    for (let r = 2; r < 64; r++) {
      expect(weightPassRowsFlopsPerMs(one, full, r)).toBeGreaterThan(weightPassRowsFlopsPerMs(one, full, r - 1));
      expect(time(r + 1) - time(r)).toBeCloseTo(time(r) - time(r - 1), 12);
    }
  });
});
