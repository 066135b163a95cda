// The super-block loop shared by the K-quants' single-row products (Q2_K, Q3_K, Q6_K; Q4_K, Q5_K via k4-family.ts) against a prepared Q8_K row
// (Q8_KS in the relaxed build): [nb × f32 d][nb × 16 × i16 bsums][nb × 256 q], and their rows class for the tiles.
// Each type has a block class L in its own file whose methods inline: blockBytes(); blockDot(p, xd, bsums, aq), one
// super-block's f32x4 contribution; row4 (and, where the relaxed build uses it, row8), which call its own batch products.
import { hsum } from '../simd';
import { KACT_BYTES } from './int-dot';

/** W[r]·act for one weight row at wr and one prepared activation row at ad of nb super-blocks; one function per type. */
function rowDotK<L>(wr: usize, ad: usize, nb: i32): f32 {
  const block = changetype<L>(0);
  const sums = ad + (<usize>nb << 2);
  const aq = ad + <usize>nb * 36;
  let s = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    s = f32x4.add(s, block.blockDot(wr + <usize>b * block.blockBytes(), load<f32>(ad + (<usize>b << 2)), sums + (<usize>b << 5), aq + (<usize>b << 8) * KACT_BYTES));
  }
  return hsum(s);
}

/** A K-quant's row products for the tiles (row-tiles.ts): rowDotK over its block class L, and L's row4 and row8. */
@final @unmanaged export class KRows<L> {
  row(wr: usize, ad: usize, nb: i32): f32 {
    return rowDotK<L>(wr, ad, nb);
  }
  row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
    changetype<L>(0).row4(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
  }
  row8(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
    changetype<L>(0).row8(wr, a0, ab, nb, o0, outStep);
  }
}
