// Past the 4 GiB limit of one WebAssembly memory: two arenas of more than 2 GiB each, filled with Q8_0 weights, and a
// threaded product over all the weights of each; every output row is checked bit for bit against a product of the
// first tile computed on the calling thread alone. Offsets above 2^31 travel through the control block and the
// kernels' i32 arguments here, which tests cannot afford to exercise (4.5 GB of RSS).
// Usage: npx tsx packages/kernels/scripts/check-big-arenas.ts [--gib 2.1] [--threads 2]
import { parseArgs } from 'node:util';
import { createKernelRuntime, ggmlRowBytes, ggmlTypeByName, type WeightMatrix } from '../src/index.js';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '2.1' }, threads: { type: 'string', default: '2' } } });
const threads = Number(values.threads);
const type = ggmlTypeByName('Q8_0')!;
const COLS = 4096;
const TILE = 4096; // rows of the random tile that is repeated to fill the arena
const rowBytes = ggmlRowBytes(type, COLS);
const rows = Math.floor((Number(values.gib) * 2 ** 30) / rowBytes / TILE) * TILE;
const weightBytes = rows * rowBytes;

const rt = await createKernelRuntime({ threads });
console.log(`${rt.threads} threads; 2 arenas × ${rows} rows × ${COLS} Q8_0 = ${(weightBytes / 2 ** 30).toFixed(2)} GiB each`);
let failures = 0;
const t0 = performance.now();
for (let a = 0; a < 2; a++) {
  const arena = await rt.createArena(weightBytes + (64 << 20));
  const x = arena.alloc(COLS * 4);
  const out = arena.alloc(rows * 4);
  const w: WeightMatrix = { arena, type, rows, cols: COLS, ptr: arena.alloc(weightBytes), rowBytes };
  // A random tile (a different one per arena), then copies of it to the end (memmove speed).
  const tileBytes = TILE * rowBytes;
  const tile = arena.bytes(w.ptr, tileBytes);
  let s = 777 + a;
  for (let i = 0; i < tileBytes; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    tile[i] = s >>> 24;
  }
  for (let b = 0; b < tileBytes; b += 34) {
    tile[b] = s & 0xff;
    tile[b + 1] = 0x1c | ((b >> 5) & 1);
  }
  const all = arena.bytes(w.ptr, weightBytes);
  for (let have = tileBytes; have < weightBytes; have *= 2) all.copyWithin(have, 0, Math.min(have, weightBytes - have));
  const xs = arena.f32(x, COLS);
  for (let i = 0; i < COLS; i++) xs[i] = Math.cos(i * 0.1 + a);
  const fmt = rt.actFormat(type);
  const actBytes = arena.kernels.act_row_bytes(fmt, COLS);
  const act = arena.alloc(actBytes);
  arena.kernels.prepare_act(fmt, x, 1, COLS, act);

  // Reference: the tile alone, on this thread only.
  const ref = arena.alloc(TILE * 4);
  arena.kernels.matmul(type.id, w.ptr, COLS, 0, TILE, act, actBytes, 1, ref, TILE);
  const refBits = new Uint32Array(arena.bytes(ref, TILE * 4).slice().buffer);

  const t = performance.now();
  rt.matmul(w, act, actBytes, 1, out, rows);
  const ms = performance.now() - t;
  const got = new Uint32Array(arena.bytes(out, rows * 4).slice().buffer);
  let bad = 0;
  for (let r = 0; r < rows; r++) if (got[r] !== refBits[r % TILE]) bad++;
  failures += bad;
  const lastRowAt = w.ptr + (rows - 1) * rowBytes;
  console.log(
    `arena ${a}: ${(arena.capacityBytes / 2 ** 30).toFixed(2)} GiB memory, last weight row at offset ${lastRowAt} (> 2^31: ${lastRowAt > 2 ** 31}); ` +
      `product over ${(weightBytes / 1e9).toFixed(2)} GB in ${ms.toFixed(0)} ms (${(weightBytes / 1e6 / ms).toFixed(1)} GB/s); rows differing from the reference: ${bad}`,
  );
}
const rss = process.memoryUsage().rss;
console.log(`RSS ${(rss / 2 ** 30).toFixed(2)} GiB; total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
await rt.close();
if (failures > 0) {
  console.error(`FAILED: ${failures} rows differ`);
  process.exit(1);
}
console.log('OK: both arenas computed every row exactly');
