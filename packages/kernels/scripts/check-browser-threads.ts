// The threaded runtime in real Chromium (issue 14's browser node): serves the built package (dist/ and wasm/) on
// 127.0.0.1 with the COOP/COEP headers that make a page cross-origin isolated, and runs in the page, on its main
// thread, the same F32 and Q8_0 products on 1 and 2 threads (module Web Workers); the bits must be equal.
// Needs `npm run build` first. Usage: npx tsx packages/kernels/scripts/check-browser-threads.ts
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const types: Record<string, string> = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

const PAGE = `<!doctype html><script type="module">
import { createKernelRuntime, ggmlTypeByName } from '/dist/index.js';
async function run(threads, typeName) {
  const rt = await createKernelRuntime({ threads, minParallelWork: 0 });
  const rows = 1037, cols = 256, nAct = 3;
  const type = ggmlTypeByName(typeName);
  const rowBytes = typeName === 'F32' ? cols * 4 : (cols / 32) * 34;
  const arena = await rt.createArena(rows * rowBytes + (4 << 20));
  const w = { arena, type, rows, cols, ptr: arena.alloc(rows * rowBytes), rowBytes };
  const wb = arena.bytes(w.ptr, rows * rowBytes);
  let s = 99;
  for (let i = 0; i < wb.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; wb[i] = s >>> 24; }
  if (typeName === 'F32') { const f = arena.f32(w.ptr, rows * cols); for (let i = 0; i < f.length; i++) f[i] = Math.sin(i); }
  else for (let b = 0; b < wb.length; b += 34) { wb[b] = 0; wb[b + 1] = 0x1c; }
  const x = arena.alloc(nAct * cols * 4);
  const xs = arena.f32(x, nAct * cols); for (let i = 0; i < xs.length; i++) xs[i] = Math.cos(i);
  const fmt = rt.actFormat(type);
  const actBytes = arena.kernels.act_row_bytes(fmt, cols);
  let act = x;
  if (typeName !== 'F32') { act = arena.alloc(nAct * actBytes); arena.kernels.prepare_act(fmt, x, nAct, cols, act); }
  const out = arena.alloc(nAct * rows * 4);
  let chunks = 0;
  for (let i = 0; i < 50; i++) rt.matmul(w, act, actBytes, nAct, out, rows);
  const t = performance.now();
  for (let i = 0; i < 200; i++) rt.matmul(w, act, actBytes, nAct, out, rows);
  const ms = (performance.now() - t) / 200;
  const bits = Array.from(new Uint32Array(arena.bytes(out, nAct * rows * 4).slice().buffer));
  const workerChunks = rt.workerChunks ?? 0;
  await rt.close();
  return { threads: rt.threads, bits, ms, workerChunks };
}
try {
  const res = {};
  for (const t of ['F32', 'Q8_0']) res[t] = [await run(1, t), await run(2, t)];
  window.result = { isolated: crossOriginIsolated, res };
} catch (e) { window.result = { error: String(e && e.stack || e) }; }
</script>`;

const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
  if (path === '/') {
    res.writeHead(200, { ...headers, 'content-type': 'text/html' });
    res.end(PAGE);
    return;
  }
  try {
    const body = await readFile(join(root, path));
    res.writeHead(200, { ...headers, 'content-type': types[extname(path)] ?? 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404, headers);
    res.end();
  }
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let failed = false;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log('page:', m.text()));
  page.on('pageerror', (e) => console.log('page error:', e.message));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 60_000 });
  const result = (await page.evaluate(() => (window as unknown as { result: unknown }).result)) as {
    error?: string;
    isolated: boolean;
    res: Record<string, { threads: number; bits: number[]; ms: number; workerChunks: number }[]>;
  };
  if (result.error) throw new Error(result.error);
  console.log(`Chromium ${browser.version()}, crossOriginIsolated: ${result.isolated}`);
  for (const [type, [one, two]] of Object.entries(result.res)) {
    const same = one.bits.length === two.bits.length && one.bits.every((b, i) => b === two.bits[i]);
    console.log(
      `${type} 1037×256 × 3: 1 thread ${one.ms.toFixed(3)} ms, ${two.threads} threads ${two.ms.toFixed(3)} ms (chunks by workers ${two.workerChunks}); bits equal: ${same}`,
    );
    if (!same || two.threads !== 2 || two.workerChunks === 0) failed = true;
  }
} finally {
  await browser.close();
  server.close();
}
if (failed) {
  console.error('FAILED');
  process.exit(1);
}
console.log('OK: the threaded runtime runs in Chromium on module Web Workers with the same bits');
