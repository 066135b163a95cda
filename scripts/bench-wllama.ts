/**
 * llama.cpp's WebAssembly build (@wllama/wllama, in Debian's Chromium) on one GGUF: prefill and decode tok/s and the
 * renderer's peak RSS, per thread count. The measurement is scripts/wllama-baseline.ts; bench-engine.ts runs the same
 * beside edge-node and native llama.cpp (`--engines ours,llama,wllama`).
 *
 *   npx tsx scripts/bench-wllama.ts --model FILE [--threads 1,2] [--prompt-tokens 128] [--gen-tokens 32] [--runs 2] [--json]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { measureWllama, type WllamaMeasurement } from './wllama-baseline.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '1,2' },
    'prompt-tokens': { type: 'string', default: '128' },
    'gen-tokens': { type: 'string', default: '32' },
    runs: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
  },
});
if (!values.model) {
  console.error('usage: npx tsx scripts/bench-wllama.ts --model FILE [--threads 1,2] [--prompt-tokens 128] [--gen-tokens 32] [--runs 2] [--json]');
  process.exit(2);
}
const threadCounts = values.threads!.split(',').map(Number);
if (threadCounts.some((t) => !Number.isInteger(t) || t < 1)) throw new RangeError('--threads takes whole numbers ≥ 1, e.g. 1,2');
const promptTokens = Number(values['prompt-tokens']);
const genTokens = Number(values['gen-tokens']);
const runs = Number(values.runs);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const mib = (b: number | undefined) => (b === undefined ? '?' : `${(b / 2 ** 20).toFixed(0)} MiB`);

const loadBefore = load();
const results: WllamaMeasurement[] = [];
for (const threads of threadCounts) {
  const r = await measureWllama({ modelPath: values.model, threads, promptTokens, genTokens, runs });
  results.push(r);
  if (!values.json) process.stderr.write(`${threads} thread(s): done, load ${load()}\n`);
}
if (values.json) {
  console.log(JSON.stringify(results));
} else {
  const first = results[0];
  console.log(`${values.model}: prompt ${promptTokens} tokens, ${genTokens} generated (greedy, EOS ignored), warm-up + median of ${runs}`);
  console.log(`@wllama/wllama ${first.wllamaVersion} (llama.cpp ${first.libllamaVersion}), Chromium ${first.chromiumVersion}, cross-origin isolated: ${first.crossOriginIsolated}`);
  const header = ['threads', 'mode', 'prefill t/s', 'decode t/s', 'prefill runs', 'decode runs', 'busy cores', 'overhead ms', 'renderer peak', 'browser peak', 'load s'];
  const rows = results.map((r) => [
    r.threadsUsed === r.threads ? String(r.threads) : `${r.threads} (ran ${r.threadsUsed})`,
    r.multiThread ? 'pthreads' : 'single',
    r.prefillTokPerS.toFixed(1),
    r.decodeTokPerS.toFixed(2),
    r.prefillRuns.map((x) => x.toFixed(1)).join('/'),
    r.decodeRuns.map((x) => x.toFixed(1)).join('/'),
    r.busyCores === undefined ? '?' : r.busyCores.toFixed(2),
    r.pageOverheadMs.toFixed(0),
    mib(r.peakRssBytes),
    mib(r.browserPeakRssBytes),
    (r.loadMs / 1000).toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i < 2 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  console.log('\n' + line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of rows) console.log(line(c));
  const warnings = [...new Set(results.flatMap((r) => r.warnings))];
  if (warnings.length) console.log(`\nwllama warnings: ${warnings.slice(0, 5).join(' | ')}${warnings.length > 5 ? ` (+${warnings.length - 5})` : ''}`);
  console.log(`\nload average before: ${loadBefore}; after: ${load()} (2 cores: anything above ~0.5 disturbs these figures)`);
}
