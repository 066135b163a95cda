// A/B timing of two builds of the kernels on the same product, interleaved in one process (CPU time), for judging a
// kernel change on a machine whose cores are shared:  npx tsx ab-kernels.ts A.wasm B.wasm TYPE [nAct] [rounds]
// Shape: AB_ROWS × AB_COLS (default 4096 × 4096); a model-sized matrix (e.g. 262144 × 1024, 285 MB of Q8_0) shows
// how the access pattern streams from memory, which a cache-sized one hides.
import { productOf, productShape, sampleRows } from './product-fixture.js';

const [fa, fb, typeName, nActArg, roundsArg] = process.argv.slice(2);
const nAct = Number(nActArg ?? 1);
const rounds = Number(roundsArg ?? 20);
const rows = Number(process.env.AB_ROWS ?? 4096), cols = Number(process.env.AB_COLS ?? 4096);
const shape = productShape(typeName, nAct, rows, cols);
const sample = sampleRows(shape);
const runs = [productOf(fa, shape, sample), productOf(fb, shape, sample)];
const best = [Infinity, Infinity];
for (let i = 0; i < rounds; i++) {
  for (const j of [0, 1]) {
    const n = nAct === 1 && rows * cols <= 1 << 24 ? 20 : 1;
    const c0 = process.cpuUsage();
    for (let k = 0; k < n; k++) runs[j]();
    const c = process.cpuUsage(c0);
    best[j] = Math.min(best[j], (c.user + c.system) / 1000 / n);
  }
}
console.log(`${typeName} nAct=${nAct}: A ${best[0].toFixed(3)} ms, B ${best[1].toFixed(3)} ms (best CPU time per product)`);
