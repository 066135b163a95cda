/**
 * The browser node's kernels against the same kernels in Node: the device measurement every node makes at start
 * (one-row Q8_0 product = decode, 64-row = prefill, one thread), `--runs` times in Chromium (Debian's, through
 * playwright-core, a cross-origin-isolated page) and in this Node process, alternating so that load from other
 * processes on the shared cores hits both alike. Prints medians and the ratio browser / Node.
 *
 *   npx tsx scripts/bench-browser-kernels.ts [--runs 7] [--no-isolation]
 *
 * --no-isolation serves the page without COOP/COEP, as a phone on plain http sees it: the kernels then run from
 * kernels-unshared.wasm over a non-shared memory.
 */
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { createKernelRuntime, KERNEL_RELAXED_UNSHARED_WASM_URL, KERNEL_RELAXED_WASM_URL, KERNEL_UNSHARED_WASM_URL, KERNEL_WASM_URL } from '@edge-node/kernels';
import { measureDevice, type DeviceProfile } from '@edge-node/node';
// @ts-expect-error: a plain .mjs module shared with the bundler script
import { browserBuildOptions } from '../packages/browser/scripts/bundle-options.mjs';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, 'no-isolation': { type: 'boolean', default: false } } });
const isolation = values['no-isolation'] ? {} : { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
const runs = Number(values.runs);
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const dir = await mkdtemp(join(tmpdir(), 'bench-browser-kernels-'));
await build({ ...browserBuildOptions(fileURLToPath(new URL('./browser/kernels-bench-entry.ts', import.meta.url)), join(dir, 'assets', 'bench.js')), sourcemap: false });
const files: Record<string, [string, string]> = {
  '/': [join(dir, 'index.html'), 'text/html'],
  '/assets/bench.js': [join(dir, 'assets', 'bench.js'), 'text/javascript'],
  '/wasm/kernels.wasm': [fileURLToPath(KERNEL_WASM_URL), 'application/wasm'],
  '/wasm/kernels-unshared.wasm': [fileURLToPath(KERNEL_UNSHARED_WASM_URL), 'application/wasm'],
  '/wasm/kernels-relaxed.wasm': [fileURLToPath(KERNEL_RELAXED_WASM_URL), 'application/wasm'],
  '/wasm/kernels-relaxed-unshared.wasm': [fileURLToPath(KERNEL_RELAXED_UNSHARED_WASM_URL), 'application/wasm'],
};
const server = createServer(async (req, res) => {
  const f = files[req.url ?? ''];
  if (!f) return void res.writeHead(404).end();
  const body = req.url === '/' ? Buffer.from('<!doctype html><script type="module" src="/assets/bench.js"></script>') : await readFile(f[0]);
  res.writeHead(200, { 'content-type': f[1], ...isolation });
  res.end(body);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
const page = await browser.newPage();
await page.goto(`http://127.0.0.1:${port}/`);
await page.waitForFunction(() => typeof (globalThis as unknown as { measure?: unknown }).measure === 'function');
const isolated = await page.evaluate(() => globalThis.crossOriginIsolated);
const ua = await page.evaluate(() => navigator.userAgent);

console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${runs} runs each, alternating; Chromium: ${/Chrome\/\S+/.exec(ua)?.[0]}, cross-origin isolated: ${isolated}`);
const node: DeviceProfile[] = [];
const tab: DeviceProfile[] = [];
const runtime = await createKernelRuntime({ threads: 1 });
for (let i = 0; i < runs; i++) {
  node.push(await measureDevice({ runtime, memoryBudgetBytes: 1 << 28 }));
  tab.push((await page.evaluate(() => (globalThis as unknown as { measure: () => Promise<unknown> }).measure())) as DeviceProfile);
}
await runtime.close();
await browser.close();
server.close();
await rm(dir, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (what: string, pick: (p: DeviceProfile) => number, unit: string) => {
  const n = median(node.map(pick));
  const b = median(tab.map(pick));
  console.log(`${what.padEnd(22)} Node ${n.toFixed(2).padStart(7)} ${unit}   Chromium ${b.toFixed(2).padStart(7)} ${unit}   browser/Node ${(b / n).toFixed(2)}`);
  return { node: n, browser: b, ratio: b / n };
};
const result = {
  decode: row('decode (1 row Q8_0)', (p) => p.gflopsDecode, 'GFLOP/s'),
  prefill: row('prefill (64 rows Q8_0)', (p) => p.gflopsPrefill, 'GFLOP/s'),
  bandwidth: row('weight bandwidth', (p) => p.memBandwidthGBps, 'GB/s'),
  isa: { node: node[0].isa, browser: tab[0].isa },
};
console.log(`isa: Node ${result.isa.node}, Chromium ${result.isa.browser}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(JSON.stringify(result));
