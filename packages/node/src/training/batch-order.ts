/**
 * Which examples make step `step`'s batch: the examples in a seeded random order, a new order each pass over the data
 * (epoch), taken `batch` at a time and wrapping around. The same seed gives the same batches on every device.
 */
export function batchIndices(count: number, batch: number, step: number, seed: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < batch; k++) {
    const flat = step * batch + k;
    const epoch = Math.floor(flat / count);
    out.push(permutation(count, seed + epoch * 0x9e3779b1)[flat % count]);
  }
  return out;
}

/** A Fisher–Yates shuffle of 0 … count−1 driven by a 32-bit LCG from `seed`. */
function permutation(count: number, seed: number): number[] {
  const p = Array.from({ length: count }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = count - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = Math.floor((s / 2 ** 32) * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
