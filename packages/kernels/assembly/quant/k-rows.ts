// The super-block loop shared by the K-quants' single-row products (Q2_K, Q3_K, Q6_K; Q4_K, Q5_K via k4-family.ts) against a prepared Q8_K row
// (Q8_KS, Q8_KN or Q8_KP in the relaxed build, activation.ts): [nb × f32 d][nb × 32 bytes of sums][nb × 256 q], and
// their rows class for the tiles.
// Each type has a block class L in its own file whose methods inline: blockBytes(); blockDot(p, xd, bsums, aq), one
// super-block's f32x4 contribution; row4 (and, where the relaxed build uses them, row8, row9 and row2), which call its
// own batch products.
import { hsum } from '../simd';
import { KACT_BYTES } from './int-dot';

/**
 * W[r]·act for weight rows [r0, r1) (rowBytes apart from w) and one prepared activation row at ad of nb super-blocks,
 * each stored at out + 4r; one function per type. The rows loop here, not in the tiles: a call per row cost ~4 ns,
 * ~10 % of a 1024-wide Q4_K row.
 */
function rowDotK<L>(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
  const block = changetype<L>(0);
  const sums = ad + (<usize>nb << 2);
  const aq = ad + <usize>nb * 36;
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * rowBytes;
    let s = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      s = f32x4.add(s, block.blockDot(wr + <usize>b * block.blockBytes(), load<f32>(ad + (<usize>b << 2)), sums + (<usize>b << 5), aq + (<usize>b << 8) * KACT_BYTES));
    }
    store<f32>(out + (<usize>r << 2), hsum(s));
  }
}

/** A K-quant's row products for the tiles (row-tiles.ts): rowDotK over its block class L, and L's row4, row8, row9 and row2. */
@final @unmanaged export class KRows<L> {
  rows(w: usize, rowBytes: usize, r0: i32, r1: i32, ad: usize, nb: i32, out: usize): void {
    rowDotK<L>(w, rowBytes, r0, r1, ad, nb, out);
  }
  row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
    changetype<L>(0).row4(wr, ad, a1, a2, a3, nb, o, o1, o2, o3);
  }
  row8(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
    changetype<L>(0).row8(wr, a0, ab, nb, o0, outStep);
  }
  row9(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
    changetype<L>(0).row9(wr, a0, ab, nb, o0, outStep);
  }
  row2(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
    changetype<L>(0).row2(wr, a0, ab, nb, o0, outStep);
  }
}
