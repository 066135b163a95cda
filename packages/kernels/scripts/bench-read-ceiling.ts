// How fast can WebAssembly read weights at all on this machine? One thread streams a model-sized buffer (v128 loads,
// nothing else) and then runs our Q8_0 product over the same bytes, so a decode figure can be set against the bound
// that memory and 16-byte loads put on it:   npx tsx packages/kernels/scripts/bench-read-ceiling.ts [MiB] [rounds]
// (CPU time, best of the rounds; the cores are shared, so run it more than once.)
import asc from 'assemblyscript/asc';
import { ggmlTypeByName, instantiateKernels, loadKernelModule } from '../src/index.js';

const mib = Number(process.argv[2] ?? 288);
const rounds = Number(process.argv[3] ?? 5);
const bytes = mib << 20;

const READ = `export function read(p: usize, n: usize): i32 {
  let a = i32x4.splat(0), b = i32x4.splat(0), c = i32x4.splat(0), d = i32x4.splat(0);
  for (const e = p + n; p < e; p += 64) {
    a = i32x4.add(a, v128.load(p)); b = i32x4.add(b, v128.load(p, 16));
    c = i32x4.add(c, v128.load(p, 32)); d = i32x4.add(d, v128.load(p, 48));
  }
  return i32x4.extract_lane(i32x4.add(i32x4.add(a, b), i32x4.add(c, d)), 0);
}`;
const compiled = await asc.compileString(READ, { optimizeLevel: 3, runtime: 'stub', enable: ['simd', 'threads'], importMemory: true, sharedMemory: true, maximumMemory: 65536, noAssert: true });
if (compiled.error || !compiled.binary) throw new Error(`read kernel: ${compiled.stderr.toString()}`);

const cols = 1024, type = ggmlTypeByName('Q8_0')!;
const rowBytes = (cols / 32) * 34, rows = Math.floor(bytes / rowBytes);
const base = 1 << 20;
const memory = new WebAssembly.Memory({ initial: Math.ceil((base + rows * rowBytes + (4 << 20)) / 65536), maximum: 65536, shared: true });
const reader = new WebAssembly.Instance(new WebAssembly.Module(compiled.binary as Uint8Array<ArrayBuffer>), { env: { memory, abort() {} } }).exports as { read: (p: number, n: number) => number };
const k = instantiateKernels(await loadKernelModule(), memory);
// Real-looking blocks: an f16 scale of 2^-8 and small int8 values.
const u8 = new Uint8Array(memory.buffer);
for (let r = 0; r < rows * (cols / 32); r++) {
  const o = base + r * 34;
  u8[o] = 0x00; u8[o + 1] = 0x1c;
  for (let j = 0; j < 32; j++) u8[o + 2 + j] = (r * 7 + j * 13) & 0x3f;
}
const xp = base + rows * rowBytes;
new Float32Array(memory.buffer, xp, cols).set(Float32Array.from({ length: cols }, (_, j) => Math.sin(j)));
const act = xp + cols * 4, actBytes = k.act_row_bytes(k.act_format(type.id), cols);
k.prepare_act(k.act_format(type.id), xp, 1, cols, act);
const out = act + actBytes;

function best(f: () => void): number {
  let b = Infinity;
  for (let i = 0; i < rounds; i++) {
    const c0 = process.cpuUsage();
    f();
    const c = process.cpuUsage(c0);
    b = Math.min(b, (c.user + c.system) / 1000);
  }
  return b;
}
const n = rows * rowBytes;
const tRead = best(() => reader.read(base, n & ~63));
const tQ8 = best(() => k.matmul(type.id, base, cols, 0, rows, act, actBytes, 1, out, rows));
const gbs = (ms: number) => (n / ms / 1e6).toFixed(2);
console.log(`${(n / 2 ** 20).toFixed(0)} MiB, 1 thread: read only ${tRead.toFixed(1)} ms (${gbs(tRead)} GB/s); Q8_0 product ${tQ8.toFixed(1)} ms (${gbs(tQ8)} GB/s) = ${(tRead / tQ8).toFixed(2)}× the read bound`);
