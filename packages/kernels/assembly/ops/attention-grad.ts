// Causal attention's backward for training (node's training/attention-grad.ts, whose f32 path this is): the same sums
// in the same order with the same roundings — f64 products and additions, each += into an f32 array rounded to f32 —
// so the same bits; here without typed-array bounds checks, and two elements of a row at a time (f64x2 lanes over d,
// each lane its own sum: the order within every sum is unchanged).

/** f64 → f32 → f64, in both lanes: the rounding `+=` into an f32 array makes. */
// @ts-ignore: decorator
@inline function fround2(a: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(a));
}

/** Two f32 values at p as f64x2. */
// @ts-ignore: decorator
@inline function load2(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): f64 {
  return <f64>load<f32>(p + (<usize>i << 2));
}

/**
 * dq, dk, dv (f32, dk and dv zeroed by the caller before the first head) from dOut, q [t, heads·headDim], k, v
 * [t, kvHeads·headDim] and the forward's probabilities of heads [h0, h1) ([h1 − h0, t, t]); scale = 1/√headDim as the
 * host computes it. ds: t·t f64 of scratch, row: headDim f64 of scratch. For each head: dS row by row (four keys side
 * by side), dQ rows over j, dK and dV rows over i. Ranges of heads called in head order give one call's bits.
 */
export function attentionBackward(
  dOut: usize, q: usize, k: usize, v: usize, probs: usize,
  t: i32, heads: i32, kvHeads: i32, headDim: i32, scale: f64,
  dq: usize, dk: usize, dv: usize, ds: usize, row: usize, h0: i32, h1: i32,
): void {
  const qW = heads * headDim;
  const kvW = kvHeads * headDim;
  const group = heads / kvHeads;
  const d2 = headDim & ~1;
  for (let h = h0; h < h1; h++) {
    const kh = (h / group) * headDim;
    const hq = h * headDim;
    for (let i = 0; i < t; i++) {
      const qo = i * qW + hq;
      const po = ((h - h0) * t + i) * t;
      const so = i * t;
      let j = 0;
      for (; j + 3 <= i; j += 4) {
        const v0 = j * kvW + kh, v1 = v0 + kvW, v2 = v1 + kvW, v3 = v2 + kvW;
        let s0: f64 = 0, s1: f64 = 0, s2: f64 = 0, s3: f64 = 0;
        for (let d = 0; d < headDim; d++) {
          const g = f(dOut, qo + d);
          s0 += g * f(v, v0 + d);
          s1 += g * f(v, v1 + d);
          s2 += g * f(v, v2 + d);
          s3 += g * f(v, v3 + d);
        }
        const sp = ds + (<usize>(so + j) << 3);
        store<f64>(sp, s0);
        store<f64>(sp, s1, 8);
        store<f64>(sp, s2, 16);
        store<f64>(sp, s3, 24);
      }
      for (; j <= i; j++) {
        const vo = j * kvW + kh;
        let s: f64 = 0;
        for (let d = 0; d < headDim; d++) s += f(dOut, qo + d) * f(v, vo + d);
        store<f64>(ds + (<usize>(so + j) << 3), s);
      }
      let dot: f64 = 0;
      for (j = 0; j <= i; j++) dot += load<f64>(ds + (<usize>(so + j) << 3)) * f(probs, po + j);
      for (j = 0; j <= i; j++) {
        const sp = ds + (<usize>(so + j) << 3);
        store<f64>(sp, f(probs, po + j) * (load<f64>(sp) - dot) * scale);
      }
      // dQ_i = Σ_j dS_ij K_j, j in order, rounded to f32 after each addition.
      memory.fill(row, 0, <usize>headDim << 3);
      j = 0;
      for (; j + 3 <= i; j += 4) {
        const k0 = j * kvW + kh, k1 = k0 + kvW, k2 = k1 + kvW, k3 = k2 + kvW;
        const sp = ds + (<usize>(so + j) << 3);
        const e0 = load<f64>(sp), e1 = load<f64>(sp, 8), e2 = load<f64>(sp, 16), e3 = load<f64>(sp, 24);
        const c0 = f64x2.splat(e0), c1 = f64x2.splat(e1), c2 = f64x2.splat(e2), c3 = f64x2.splat(e3);
        let d = 0;
        for (; d < d2; d += 2) {
          const rp = row + (<usize>d << 3);
          let a = v128.load(rp);
          a = fround2(f64x2.add(a, f64x2.mul(c0, load2(k + (<usize>(k0 + d) << 2)))));
          a = fround2(f64x2.add(a, f64x2.mul(c1, load2(k + (<usize>(k1 + d) << 2)))));
          a = fround2(f64x2.add(a, f64x2.mul(c2, load2(k + (<usize>(k2 + d) << 2)))));
          v128.store(rp, fround2(f64x2.add(a, f64x2.mul(c3, load2(k + (<usize>(k3 + d) << 2))))));
        }
        for (; d < headDim; d++) {
          const rp = row + (<usize>d << 3);
          let a = load<f64>(rp);
          a = <f64><f32>(a + e0 * f(k, k0 + d));
          a = <f64><f32>(a + e1 * f(k, k1 + d));
          a = <f64><f32>(a + e2 * f(k, k2 + d));
          store<f64>(rp, <f64><f32>(a + e3 * f(k, k3 + d)));
        }
      }
      for (; j <= i; j++) {
        const ko = j * kvW + kh;
        const e = load<f64>(ds + (<usize>(so + j) << 3));
        const c = f64x2.splat(e);
        let d = 0;
        for (; d < d2; d += 2) {
          const rp = row + (<usize>d << 3);
          v128.store(rp, fround2(f64x2.add(v128.load(rp), f64x2.mul(c, load2(k + (<usize>(ko + d) << 2))))));
        }
        for (; d < headDim; d++) {
          const rp = row + (<usize>d << 3);
          store<f64>(rp, <f64><f32>(load<f64>(rp) + e * f(k, ko + d)));
        }
      }
      for (let d = 0; d < headDim; d++) store<f32>(dq + (<usize>(qo + d) << 2), <f32>load<f64>(row + (<usize>d << 3)));
    }
    // dK_j += Σ_i dS_ij Q_i and dV_j += Σ_i P_ij dO_i, i in order (heads in order across calls of this loop).
    for (let j = 0; j < t; j++) {
      const ko = j * kvW + kh;
      let i = j;
      for (; i + 3 < t; i += 4) {
        const q0 = i * qW + hq, q1 = q0 + qW, q2 = q1 + qW, q3 = q2 + qW;
        const e0 = load<f64>(ds + (<usize>(i * t + j) << 3)), e1 = load<f64>(ds + (<usize>((i + 1) * t + j) << 3));
        const e2 = load<f64>(ds + (<usize>((i + 2) * t + j) << 3)), e3 = load<f64>(ds + (<usize>((i + 3) * t + j) << 3));
        const pb = (h - h0) * t * t + i * t + j;
        const p0 = f(probs, pb), p1 = f(probs, pb + t), p2 = f(probs, pb + 2 * t), p3 = f(probs, pb + 3 * t);
        const c0 = f64x2.splat(e0), c1 = f64x2.splat(e1), c2 = f64x2.splat(e2), c3 = f64x2.splat(e3);
        const r0 = f64x2.splat(p0), r1 = f64x2.splat(p1), r2 = f64x2.splat(p2), r3 = f64x2.splat(p3);
        let d = 0;
        for (; d < d2; d += 2) {
          const kp = dk + (<usize>(ko + d) << 2), vp = dv + (<usize>(ko + d) << 2);
          let a = load2(kp);
          a = fround2(f64x2.add(a, f64x2.mul(c0, load2(q + (<usize>(q0 + d) << 2)))));
          a = fround2(f64x2.add(a, f64x2.mul(c1, load2(q + (<usize>(q1 + d) << 2)))));
          a = fround2(f64x2.add(a, f64x2.mul(c2, load2(q + (<usize>(q2 + d) << 2)))));
          a = f64x2.add(a, f64x2.mul(c3, load2(q + (<usize>(q3 + d) << 2))));
          v128.store64_lane(kp, f32x4.demote_f64x2_zero(a), 0);
          let b = load2(vp);
          b = fround2(f64x2.add(b, f64x2.mul(r0, load2(dOut + (<usize>(q0 + d) << 2)))));
          b = fround2(f64x2.add(b, f64x2.mul(r1, load2(dOut + (<usize>(q1 + d) << 2)))));
          b = fround2(f64x2.add(b, f64x2.mul(r2, load2(dOut + (<usize>(q2 + d) << 2)))));
          b = f64x2.add(b, f64x2.mul(r3, load2(dOut + (<usize>(q3 + d) << 2))));
          v128.store64_lane(vp, f32x4.demote_f64x2_zero(b), 0);
        }
        for (; d < headDim; d++) {
          const kp = dk + (<usize>(ko + d) << 2), vp = dv + (<usize>(ko + d) << 2);
          let a = <f64>load<f32>(kp);
          a = <f64><f32>(a + e0 * f(q, q0 + d));
          a = <f64><f32>(a + e1 * f(q, q1 + d));
          a = <f64><f32>(a + e2 * f(q, q2 + d));
          store<f32>(kp, <f32>(a + e3 * f(q, q3 + d)));
          let b = <f64>load<f32>(vp);
          b = <f64><f32>(b + p0 * f(dOut, q0 + d));
          b = <f64><f32>(b + p1 * f(dOut, q1 + d));
          b = <f64><f32>(b + p2 * f(dOut, q2 + d));
          store<f32>(vp, <f32>(b + p3 * f(dOut, q3 + d)));
        }
      }
      for (; i < t; i++) {
        const qo = i * qW + hq;
        const e = load<f64>(ds + (<usize>(i * t + j) << 3));
        const p = f(probs, (h - h0) * t * t + i * t + j);
        for (let d = 0; d < headDim; d++) {
          const kp = dk + (<usize>(ko + d) << 2), vp = dv + (<usize>(ko + d) << 2);
          store<f32>(kp, <f32>(<f64>load<f32>(kp) + e * f(q, qo + d)));
          store<f32>(vp, <f32>(<f64>load<f32>(vp) + p * f(dOut, qo + d)));
        }
      }
    }
  }
}
