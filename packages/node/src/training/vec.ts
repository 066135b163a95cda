/**
 * The training ops work on f32 arrays; the same code on f64 arrays is the float64 reference the gradient checks
 * compare against. Every reduction runs in one fixed order (row by row, column by column), so a result never depends
 * on anything but its inputs. Sums are carried in a JS number (f64) and rounded once when stored.
 */
export type Vec = Float32Array | Float64Array;

/** A new zeroed array of x's precision. */
export function zerosLike(x: Vec, n: number): Vec {
  return x instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}
