// Compiles the AssemblyScript kernels (assembly/) to WebAssembly with npm's assemblyscript alone: no system compiler,
// nothing downloaded. One module, SIMD128 + threads, importing a shared memory (env.memory) so that every worker
// thread runs the same kernels on the same weights.
import asc from 'assemblyscript/asc';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binaryenHints } from './binaryen-hints.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'wasm'), { recursive: true });

const common = [
  join(root, 'assembly/index.ts'),
  '-O3',
  '--noAssert',
  '--runtime', 'stub',
  '--enable', 'simd',
  '--enable', 'threads',
  '--importMemory',
  '--noExportMemory',
  '--maximumMemory', '65536',
  // [1024, 1024 + 256 KiB) holds the f16 → f32 table (quant/half-scale.ts, filled at instantiation); static data
  // (lookup tables) starts above it; the host's arena allocator starts at the exported __heap_base.
  '--memoryBase', String(1024 + 65536 * 4),
];

// kernels.wasm imports a shared memory (worker threads); kernels-unshared.wasm the same code over a plain memory, for
// pages that are not cross-origin isolated (a phone opening http://<lan address>/join: no SharedArrayBuffer there).
// The -relaxed twins are built from the same source with relaxed SIMD on (ASC_FEATURE_RELAXED_SIMD): their integer
// products use i32x4.relaxed_dot_i8x16_i7x16_add_s, with the same bits out (src/kernel-isa.ts chooses at run time).
const RELAXED = ['--enable', 'relaxed-simd'];
const variants = [
  { out: 'kernels.wasm', flags: ['--sharedMemory'] },
  { out: 'kernels-unshared.wasm', flags: [] },
  { out: 'kernels-relaxed.wasm', flags: ['--sharedMemory', ...RELAXED] },
  { out: 'kernels-relaxed-unshared.wasm', flags: RELAXED },
];
for (const v of variants) {
  const { error, stderr } = await asc.main([...common, ...v.flags, '-o', join(root, 'wasm', v.out)], { transforms: [binaryenHints] });
  if (error) {
    console.error(stderr.toString());
    console.error(`build-wasm: ${v.out} failed: ${error.message}`);
    process.exit(1);
  }
}
