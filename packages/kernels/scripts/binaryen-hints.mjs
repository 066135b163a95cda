// What the kernels' build tells Binaryen besides asc's flags: set after compiling, before asc optimizes. build-wasm.mjs
// uses it, and wasm-function-names.mjs, so that its build has the same functions.
import binaryen from 'assemblyscript/lib/binaryen.js';

// The row products (assembly/quant: rowDot…, rowQ…) stay functions of their own, called directly by the tile loops
// (row-tiles.ts). asc's -O3 lets Binaryen inline any function with one caller up to size 200, which took the small
// single-row products (Q4_0, Q5_0, Q8_0, Q4_1, Q5_1) into the loops; before the tiles were generic they were in the
// function table (taken by reference) and never inlined.
const NOT_INLINED = ['*/rowDot*', '*/rowQ*'];

export const binaryenHints = {
  afterCompile(module) {
    // Nothing lives below address 1024 (--memoryBase), so Binaryen may assume low memory unused: then -O3 folds a
    // constant added to an address into the load's offset (optimize-added-constants), which V8 puts in the x64
    // address, instead of an i32 add per use — in the K-quant loops those adds and their spilled results were ~20
    // instructions a super-block (Q4_K and Q5_K 2–9 % less CPU time; the others ±2 %).
    binaryen.setLowMemoryUnused(true);
    for (const pattern of NOT_INLINED) {
      binaryen.setPassArgument('no-inline', pattern);
      module.runPasses(['no-inline']);
    }
    binaryen.setPassArgument('no-inline', null);
  },
};
