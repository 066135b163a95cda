// The kernels' wasm functions by index (as perf and V8 number them: `wasm-function[N]`), from a build of the same
// source with a name section (`--debug`, same optimisation). Usage: node wasm-function-names.mjs [--simd128]
import asc from 'assemblyscript/asc';
import binaryen from 'binaryen';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binaryenHints } from './binaryen-hints.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'kernel-names-'));
const relaxed = !process.argv.includes('--simd128');
const flags = [join(root, 'assembly/index.ts'), '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd', '--enable', 'threads',
  '--importMemory', '--noExportMemory', '--maximumMemory', '65536', '--memoryBase', String(1024 + 65536 * 4), '--sharedMemory',
  ...(relaxed ? ['--enable', 'relaxed-simd'] : []), '--debug', '-o', join(dir, 'k.wasm')];
const { error, stderr } = await asc.main(flags, { transforms: [binaryenHints] });
if (error) throw new Error(stderr.toString());
const mod = binaryen.readBinary(readFileSync(join(dir, 'k.wasm')));
for (let i = 0; i < mod.getNumFunctions(); i++) {
  const f = binaryen.getFunctionInfo(mod.getFunctionByIndex(i));
  if (!f.base) console.log(i, f.name);
}
rmSync(dir, { recursive: true });
