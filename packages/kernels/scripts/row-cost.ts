// Per-activation-row cost of a product as the batch grows, for two builds interleaved in one process (CPU time):
//   npx tsx packages/kernels/scripts/row-cost.ts A.wasm B.wasm TYPE [nAct,nAct,…] [rounds]
// Prints, for each batch size, each build's best time per activation row and its ratio to one row (decode) of
// build A, and B's time against A's. Shape: AB_ROWS × AB_COLS (default 4096 × 4096), as ab-kernels.ts.
import { productOf, productShape, sampleRows } from './product-fixture.js';

const [fa, fb, typeName, sizesArg, roundsArg] = process.argv.slice(2);
if (!fa || !fb) throw new Error('usage: row-cost.ts A.wasm B.wasm TYPE [nAct,nAct,…] [rounds]');
const sizes = (sizesArg ?? '1,2,4,8,16,64,128').split(',').map(Number);
const rounds = Number(roundsArg ?? 5);
const rows = Number(process.env.AB_ROWS ?? 4096), cols = Number(process.env.AB_COLS ?? 4096);
const sample = sampleRows(productShape(typeName, 1, rows, cols));

/** Best CPU time (ms) of one call of each product over `rounds` interleaved rounds of ≥ ~40 ms. */
function best(products: (() => void)[]): number[] {
  const out = products.map(() => Infinity);
  for (const p of products) p();
  for (let i = 0; i < rounds; i++) {
    products.forEach((p, j) => {
      const t0 = performance.now();
      p();
      const n = Math.max(1, Math.round(40 / Math.max(performance.now() - t0, 0.05)));
      const c0 = process.cpuUsage();
      for (let k = 0; k < n; k++) p();
      const c = process.cpuUsage(c0);
      out[j] = Math.min(out[j], (c.user + c.system) / 1000 / n);
    });
  }
  return out;
}

let one = 0;
for (const nAct of sizes) {
  const shape = productShape(typeName, nAct, rows, cols);
  const [a, b] = best([productOf(fa, shape, sample), productOf(fb, shape, sample)]);
  if (one === 0) one = nAct === 1 ? a : a / nAct;
  const ra = a / nAct, rb = b / nAct;
  console.log(`${typeName} nAct=${String(nAct).padStart(3)}: A ${ra.toFixed(3)} ms/row (${(ra / one).toFixed(3)} of a decode row), B ${rb.toFixed(3)} ms/row (${(rb / one).toFixed(3)}), B/A ${(b / a).toFixed(3)}`);
}
