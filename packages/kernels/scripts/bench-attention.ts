// One decode row's attention over a long context, per KV cache type, as the engine runs it for a token: every layer
// its own cache (so the caches come from memory, not from the cache of the previous call), the 300M shape by default.
//   npx tsx packages/kernels/scripts/bench-attention.ts [positions] [layers] [heads] [kvHeads] [headDim]
// Wall time of one thread; the cores are shared, so run it more than once and alternate with what you compare.
import { SerialKernelRuntime } from '../src/index.js';

const [nPos, layers, heads, kvHeads, headDim] = [1024, 16, 16, 8, 64].map((d, i) => Number(process.argv[2 + i] ?? d));
const kvDim = kvHeads * headDim;
const runtime = await SerialKernelRuntime.create();
const types = [
  { name: 'f32', code: 0, bytesPerValue: 4 },
  { name: 'f16', code: 1, bytesPerValue: 2 },
  { name: 'q8_0', code: 2, bytesPerValue: 34 / 32 },
];
const cacheBytes = layers * 2 * nPos * kvDim * types.reduce((s, t) => s + t.bytesPerValue, 0);
const arena = await runtime.createArena(Math.ceil(cacheBytes + nPos * kvDim * 4 + (8 << 20)));
const rows = arena.alloc(nPos * kvDim * 4);
const q = arena.alloc(heads * headDim * 4);
const out = arena.alloc(heads * headDim * 4);
const scores = arena.alloc(heads * nPos * 4);
arena.f32(q, heads * headDim).set(Float32Array.from({ length: heads * headDim }, (_, i) => Math.sin(i * 1.7) * 0.5));

const lines: string[] = [];
for (const t of types) {
  if (t.code === 2 && headDim % 32 !== 0) continue;
  const rowBytes = kvDim * t.bytesPerValue;
  const caches: [number, number][] = [];
  for (let l = 0; l < layers; l++) {
    const kv: number[] = [];
    for (const side of [0, 1]) {
      // Values of a few units' spread, different for every layer and side (no subnormal halves among them).
      const f = arena.f32(rows, nPos * kvDim);
      for (let i = 0; i < f.length; i++) f[i] = 2 * Math.sin(i * 0.7071 + l * 3.1 + side);
      const dst = arena.alloc(nPos * rowBytes);
      for (let p = 0; p < nPos; p++) {
        const src = rows + p * kvDim * 4;
        if (t.code === 2) arena.kernels.quantize_q8_0(src, dst + p * rowBytes, kvDim);
        else if (t.code === 1) arena.kernels.to_f16(src, dst + p * rowBytes, kvDim);
        else arena.bytes(dst + p * rowBytes, rowBytes).set(arena.bytes(src, rowBytes));
      }
      kv.push(dst);
    }
    caches.push([kv[0], kv[1]]);
  }
  const token = () => {
    for (const [k, v] of caches) arena.kernels.attention(t.code, q, k, v, nPos, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), out, scores, 0, heads);
  };
  token();
  const n = 20;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) token();
  lines.push(`${t.name} ${((performance.now() - t0) / n).toFixed(1)} ms`);
}
console.log(`attention of one token, ${layers} layers × ${heads} heads of ${headDim} (${kvHeads} KV heads), ${nPos} positions: ${lines.join(', ')}`);
await runtime.close();
