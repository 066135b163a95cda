// One product of one kernel build, repeated for S seconds: a target for perf, which with V8's jitdump shows the
// machine code V8 made of a kernel and where its time goes (Node's release builds have no --print-wasm-code):
//   perf record -k 1 -o /tmp/p.data node_modules/.bin/node --perf-prof --perf-prof-path=/tmp --import tsx \
//     packages/kernels/scripts/profile-product.ts Q4_K 1 3 [file.wasm]
// (the project's Node 24: a system Node 20 has no relaxed SIMD, so it loads the SIMD128 build and numbers its
// functions otherwise)
//   perf inject --jit -i /tmp/p.data -o /tmp/p.jit.data && perf report -i /tmp/p.jit.data --comm MainThread
//   perf annotate -i /tmp/p.jit.data --stdio -s 'JS:wasm-function[N]-N-turbofan'
// Functions are numbered, not named: `node packages/kernels/scripts/wasm-function-names.mjs` lists which is which.
// Arguments: TYPE, activation rows (1: decode), seconds, and the build (default: the relaxed one).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { productOf, productShape, sampleRows } from './product-fixture.js';

const [typeName, nActArg, secondsArg, fileArg] = process.argv.slice(2);
const nAct = Number(nActArg ?? 1), seconds = Number(secondsArg ?? 3);
const file = fileArg ?? join(dirname(fileURLToPath(import.meta.url)), '../wasm/kernels-relaxed.wasm');
const shape = productShape(typeName, nAct);
const product = productOf(file, shape, sampleRows(shape));

const end = performance.now() + seconds * 1000;
let calls = 0;
while (performance.now() < end) {
  product();
  calls++;
}
console.log(`${typeName} × ${nAct} row(s), ${file}: ${((seconds * 1000) / calls).toFixed(3)} ms a product`);
