/**
 * Row r of W (rows of `cols` values in w) times row i of X (rows of `cols` in x), in f64: the product and the sum of
 * its terms' magnitudes (what a float product's rounding error is measured against).
 */
export function f64Product(w: ArrayLike<number>, x: ArrayLike<number>, cols: number, r: number, i: number): { value: number; magnitude: number } {
  let value = 0;
  let magnitude = 0;
  for (let j = 0; j < cols; j++) {
    const t = w[r * cols + j] * x[i * cols + j];
    value += t;
    magnitude += Math.abs(t);
  }
  return { value, magnitude };
}
