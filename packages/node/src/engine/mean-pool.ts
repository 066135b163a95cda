/**
 * Mean pooling of a prompt's final-normed hidden states into one embedding, L2-normalised — what llama.cpp's
 * embedding mode gives for a decoder model with mean pooling (`--pooling mean`, normalised as its server does).
 * Rows arrive in slices (prompt chunks and steps); sums are kept in float64 so the order of slices does not matter
 * at float32 precision.
 */
export class MeanPool {
  private readonly sum: Float64Array;
  private rows = 0;

  constructor(private readonly hiddenSize: number) {
    this.sum = new Float64Array(hiddenSize);
  }

  /** Adds n rows ([n, hidden], row-major). */
  add(hidden: Float32Array, n: number): void {
    const H = this.hiddenSize;
    if (hidden.length !== n * H) throw new RangeError(`expected ${n} × ${H} values, got ${hidden.length}`);
    for (let r = 0; r < n; r++) for (let i = 0; i < H; i++) this.sum[i] += hidden[r * H + i];
    this.rows += n;
  }

  get count(): number {
    return this.rows;
  }

  /** The mean of the rows, scaled to unit length (all zeros stay zeros). */
  result(): Float32Array {
    if (this.rows === 0) throw new RangeError('no rows were pooled');
    const mean = Float64Array.from(this.sum, (v) => v / this.rows);
    const norm = Math.sqrt(mean.reduce((a, v) => a + v * v, 0));
    return Float32Array.from(mean, (v) => (norm > 0 ? v / norm : 0));
  }
}
