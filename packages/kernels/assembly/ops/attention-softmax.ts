// The attention weights from one head's scores, shared by every cache type's attention (attention.ts,
// attention-float.ts): each score kept with a running maximum as it is written, then p_t = exp(score − max) / Σ.

/** Scores at sc → the attention weights p_t = exp(score − mx) / Σ, in place. */
// @ts-ignore: decorator
@inline export function softmax(sc: usize, nPos: i32, mx: f32): void {
  let sum: f32 = 0;
  for (let t = 0; t < nPos; t++) {
    const e = Mathf.exp(load<f32>(sc + (<usize>t << 2)) - mx);
    store<f32>(sc + (<usize>t << 2), e);
    sum += e;
  }
  const inv = <f32>1 / sum;
  for (let t = 0; t < nPos; t++) store<f32>(sc + (<usize>t << 2), load<f32>(sc + (<usize>t << 2)) * inv);
}

// @ts-ignore: decorator
@inline export function storeScore(sc: usize, t: i32, v: f32, mx: f32): f32 {
  store<f32>(sc + (<usize>t << 2), v);
  return max(mx, v);
}
