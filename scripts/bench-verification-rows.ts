/**
 * What a verification pass costs by its rows on one device: a pass of 1, 2, 3, 4, 5, 7, 9, 13, 17 rows after a
 * 64-token prefix, with the logits of every row (as a verification computes them), sizes interleaved over repeats;
 * medians of wall time and of process CPU time (which other processes on a shared machine disturb less), each also
 * as a multiple of a one-row pass. With every draft accepted and drafting free, k drafts gain at most
 * (k + 1) / (the (k + 1)-row pass's multiple): the cap speculation has on this CPU (docs/speculative-decoding.md).
 *
 *   npx tsx scripts/bench-verification-rows.ts [--model FILE.gguf] [--threads 2] [--repeats 6]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalModel } from '../packages/node/src/engine/local-model.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string', default: join(tmpdir(), 'edge-node-bench', 'llama-300m-q8_0-seed0.gguf') },
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '6' },
  },
});
const SIZES = [1, 2, 3, 4, 5, 7, 9, 13, 17];
const m = await LocalModel.open(v.model!, { threads: Number(v.threads), speculate: false });
const wall = new Map<number, number[]>();
const cpu = new Map<number, number[]>();
const prefix = Array.from({ length: 64 }, (_, i) => ((i * 37) % 1000) + 5);
try {
  // Repeat 0 warms up (first touch of the weights) and is not counted.
  for (let rep = 0; rep <= Number(v.repeats); rep++) {
    for (const n of SIZES) {
      const cache = m.shard.createCache(256);
      await m.shard.forward({ kind: 'tokens', tokens: prefix }, cache);
      const rows = Array.from({ length: n }, (_, i) => 100 + i);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await m.shard.forward({ kind: 'tokens', tokens: rows }, cache, { allLogits: true });
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      cache.clear();
      if (rep === 0) continue;
      wall.set(n, [...(wall.get(n) ?? []), ms]);
      cpu.set(n, [...(cpu.get(n) ?? []), (c.user + c.system) / 1000]);
    }
  }
} finally {
  await m.close();
}
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const w1 = median(wall.get(1)!);
const c1 = median(cpu.get(1)!);
console.log(`${v.model}, ${v.threads} threads, medians of ${v.repeats} interleaved repeats`);
console.log('rows   wall ms   × one row   CPU ms   × one row   gain cap at 100 % (CPU)');
for (const n of SIZES) {
  const w = median(wall.get(n)!);
  const c = median(cpu.get(n)!);
  console.log(`${String(n).padStart(4)}   ${w.toFixed(1).padStart(7)}   ${(w / w1).toFixed(2).padStart(9)}   ${c.toFixed(1).padStart(6)}   ${(c / c1).toFixed(2).padStart(9)}   ${(n / (c / c1)).toFixed(2).padStart(6)}×`);
}
