/**
 * llama.cpp's WebAssembly build (@wllama/wllama) as a baseline: the same GGUF, the same thread count, in Debian's
 * Chromium through playwright-core. A loopback HTTP server (127.0.0.1, ephemeral port, cross-origin isolated so that
 * wllama may use its pthread build) serves a small page, wllama's ESM file and wasm straight from node_modules, and the
 * model file. The page loads the model (CPU only), runs a warm-up and then `runs` greedy completions of `genTokens`
 * tokens on a prompt text of exactly `promptTokens` tokens (wllama 3 takes no token ids: see exact-prompt-text.ts; the
 * page checks llama.cpp's count), and reports llama.cpp's own timings:
 * prefill = prompt tokens / prompt_ms (the prompt as one batch, up to the first sampled token), decode = forward
 * passes after the first token / predicted_ms — the same definitions scripts/bench-engine.ts uses for the other two
 * engines. Peak RSS is the renderer's (VmHWM of the Chromium renderer process, where the page, wllama's worker and its
 * threads live).
 */
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { chromiumProcesses, cpuTimeMs, peakRssBytes } from './chromium-processes.js';
import { exactPromptText } from './exact-prompt-text.js';
import type { WllamaBenchMark, WllamaPageBench, WllamaPageReply, WllamaPageRequest, WllamaPageRun } from './browser/wllama-bench-protocol.js';

export interface WllamaBaselineOptions {
  modelPath: string;
  threads: number;
  promptTokens: number;
  genTokens: number;
  /** Measured runs, after one short warm-up (8 words of the prompt, 2 generated). */
  runs: number;
  chromiumPath?: string;
  /** Gives up on the page after this long (default 30 min). */
  timeoutMs?: number;
}

export interface WllamaMeasurement {
  /** Medians over the runs. */
  prefillTokPerS: number;
  decodeTokPerS: number;
  prefillRuns: number[];
  decodeRuns: number[];
  /** Median of (page wall time of a completion − prompt_ms − predicted_ms): wllama's own cost around llama.cpp's. */
  pageOverheadMs: number;
  /** Peak RSS of the renderer process; undefined where /proc is not readable. */
  peakRssBytes?: number;
  /** Peak RSS of Chromium's browser process (it holds the fetched model as a Blob). */
  browserPeakRssBytes?: number;
  wllamaVersion: string;
  libllamaVersion: string;
  chromiumVersion: string;
  threads: number;
  /** Threads wllama computes with (1 unless its pthread build is in use). */
  threadsUsed: number;
  multiThread: boolean;
  crossOriginIsolated: boolean;
  /** The renderer's CPU time over the wall time of the measured runs: ~threadsUsed when every thread computes (ggml's
   *  threads also spin while they wait, so this shows that the threads run, not that they are useful). */
  busyCores?: number;
  fetchMs: number;
  loadMs: number;
  warnings: string[];
}

export class ChromiumMissingError extends Error {
  constructor(path: string) {
    super(`Chromium not found at ${path}: install Debian's (apt-get install chromium, or npm run setup:test)`);
    this.name = 'ChromiumMissingError';
  }
}

/** wllama could not fetch, load or run the model in the page, or the page did not come up. */
export class WllamaLoadError extends Error {
  constructor(
    readonly stage: 'page' | 'fetch' | 'load' | 'run' | 'timeout',
    message: string,
  ) {
    super(`wllama ${stage}: ${message}`);
    this.name = 'WllamaLoadError';
  }
}

const CHROMIUM = '/usr/bin/chromium';
// The flags scripts/bench-browser-kernels.ts launches Chromium with.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const wllamaDir = (): string => dirname(createRequire(import.meta.url).resolve('@wllama/wllama/package.json'));

/** Serves a file, honouring one `Range: bytes=a-b` (wllama reads Blobs, but a range costs nothing to support). */
async function sendFile(req: IncomingMessage, res: ServerResponse, path: string, type: string): Promise<void> {
  const size = (await stat(path)).size;
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (m && (m[1] || m[2])) {
    const start = m[1] ? Number(m[1]) : Math.max(0, size - Number(m[2]));
    const end = m[1] && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (start > end) return void res.writeHead(416, { 'content-range': `bytes */${size}`, ...ISOLATION }).end();
    res.writeHead(206, { 'content-type': type, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes', ...ISOLATION });
    createReadStream(path, { start, end }).pipe(res);
    return;
  }
  res.writeHead(200, { 'content-type': type, 'content-length': size, 'accept-ranges': 'bytes', ...ISOLATION });
  createReadStream(path).pipe(res);
}

async function startServer(modelPath: string): Promise<{ server: Server; origin: string }> {
  const dir = wllamaDir();
  const entry = fileURLToPath(new URL('./browser/wllama-bench-entry.ts', import.meta.url));
  const bundle = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', external: ['@wllama/wllama'], write: false, logLevel: 'warning' });
  const benchJs = bundle.outputFiles[0].contents;
  const html =
    '<!doctype html><script type="importmap">{"imports":{"@wllama/wllama":"/wllama/index.js"}}</script>' +
    '<script type="module" src="/bench.js"></script>';
  const files: Record<string, [string, string]> = {
    '/wllama/index.js': [join(dir, 'esm/index.js'), 'text/javascript'],
    '/wllama/wllama.wasm': [join(dir, 'esm/wasm/wllama.wasm'), 'application/wasm'],
    '/model.gguf': [modelPath, 'application/octet-stream'],
  };
  const server = createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/') return void res.writeHead(200, { 'content-type': 'text/html', ...ISOLATION }).end(html);
    if (url === '/bench.js') return void res.writeHead(200, { 'content-type': 'text/javascript', ...ISOLATION }).end(benchJs);
    const f = files[url];
    if (!f) return void res.writeHead(404, ISOLATION).end();
    sendFile(req, res, f[0], f[1]).catch((err: Error) => res.destroy(err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

export async function measureWllama(opts: WllamaBaselineOptions): Promise<WllamaMeasurement> {
  const { modelPath, threads, promptTokens, genTokens, runs } = opts;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a whole number ≥ 1, got ${threads}`);
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`runs must be a whole number ≥ 1, got ${runs}`);
  if (genTokens < 2) throw new RangeError('genTokens must be ≥ 2 (decode is timed from the second token)');
  const chromiumPath = opts.chromiumPath ?? CHROMIUM;
  if (!existsSync(chromiumPath)) throw new ChromiumMissingError(chromiumPath);
  if (!existsSync(modelPath)) throw new WllamaLoadError('fetch', `no model file ${modelPath}`);
  const promptText = await exactPromptText(modelPath, promptTokens);
  const wllamaVersion = (JSON.parse(await readFile(join(wllamaDir(), 'package.json'), 'utf8')) as { version: string }).version;

  const { server, origin } = await startServer(modelPath);
  const browser = await chromium.launch({ executablePath: chromiumPath, args: FLAGS });
  try {
    const page = await browser.newPage();
    const renderersCpuMs = async () => {
      let sum = 0;
      for (const p of await chromiumProcesses()) if (p.type === 'renderer') sum += await cpuTimeMs(p.pid);
      return sum;
    };
    const marks = new Map<string, { cpuMs: number; wallMs: number }>();
    const benchMark: WllamaBenchMark = async (label) => void marks.set(label, { cpuMs: await renderersCpuMs(), wallMs: performance.now() });
    await page.exposeFunction('benchMark', benchMark);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${origin}/`);
    try {
      await page.waitForFunction(() => typeof (globalThis as unknown as { wllamaBench?: unknown }).wllamaBench === 'function', null, { timeout: 30_000 });
    } catch {
      throw new WllamaLoadError('page', `the bench page did not start${pageErrors.length ? `: ${pageErrors.join('; ')}` : ''}`);
    }
    const req: WllamaPageRequest = {
      wasmUrl: `${origin}/wllama/wllama.wasm`,
      modelUrl: `${origin}/model.gguf`,
      threads,
      // Room for the prompt, the generated tokens and the warm-up, rounded up as bench-engine does for llama.cpp.
      contextLength: Math.max(256, Math.ceil((promptTokens + genTokens + 8) / 256) * 256),
      promptText,
      promptTokens,
      warmUpText: promptText.split(' ').slice(0, 8).join(' '),
      genTokens,
      runs,
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WllamaLoadError('timeout', `no answer after ${(opts.timeoutMs ?? 1_800_000) / 1000} s`)), opts.timeoutMs ?? 1_800_000);
    });
    let reply: WllamaPageReply;
    try {
      reply = await Promise.race([page.evaluate((r) => (globalThis as unknown as { wllamaBench: WllamaPageBench }).wllamaBench(r), req), timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (!reply.ok) throw new WllamaLoadError(reply.stage, reply.message + (pageErrors.length ? ` (page errors: ${pageErrors.join('; ')})` : ''));
    const procs = await chromiumProcesses();
    const peak = async (type: string) => {
      const xs = (await Promise.all(procs.filter((p) => p.type === type).map((p) => peakRssBytes(p.pid)))).filter((x): x is number => x !== undefined);
      return xs.length ? Math.max(...xs) : undefined;
    };
    const [m0, m1] = [marks.get('runs-start'), marks.get('runs-end')];
    const r = reply.result;
    const prefill = r.runs.map((x: WllamaPageRun) => (x.promptN / x.promptMs) * 1000);
    const decode = r.runs.map((x: WllamaPageRun) => ((x.predictedN - 1) / x.predictedMs) * 1000);
    return {
      prefillTokPerS: median(prefill),
      decodeTokPerS: median(decode),
      prefillRuns: prefill,
      decodeRuns: decode,
      pageOverheadMs: median(r.runs.map((x) => x.pageMs - x.promptMs - x.predictedMs)),
      peakRssBytes: await peak('renderer'),
      browserPeakRssBytes: await peak('browser'),
      busyCores: m0 && m1 && procs.length ? (m1.cpuMs - m0.cpuMs) / (m1.wallMs - m0.wallMs) : undefined,
      wllamaVersion,
      libllamaVersion: r.libllamaVersion,
      chromiumVersion: browser.version(),
      threads,
      threadsUsed: r.threadsUsed,
      multiThread: r.multiThread,
      crossOriginIsolated: r.crossOriginIsolated,
      fetchMs: r.fetchMs,
      loadMs: r.loadMs,
      warnings: [...r.warnings, ...pageErrors],
    };
  } finally {
    await browser.close();
    server.close();
  }
}
