/**
 * Pipeline cost per network hop: per-token decode latency of a SmolLM2-135M-shaped F32 model (random weights, the
 * real SmolLM2 tokenizer) on 1, 2 and 3 local nodes (splits 30 / 15,15 / 10,10,10), and the same rings over a
 * 3-layer model of the same width (same 2.3 KB activation frames, almost no compute: the cores stay idle, so what
 * is left is the network path itself).
 *
 *   npm run bench:pipeline                         (= tsx scripts/bench-pipeline.ts)
 *   npm run bench:pipeline -- --tokens 64 --runs 3 --nodes 1,2,3
 *
 * This process is node "a": first in ring order (names sort), so it is stage 0 and the coordinator; the other
 * nodes are `edge-node start` processes on loopback. A k-stage ring whose coordinator is stage 0 has k network
 * hops per token (a→b, …, → last stage, and the sampled token back to a); 1 node has none.
 *
 * The decode loop drives the coordinator's PipelineExecutor directly (begin, then step per token; EOS plays no
 * part), so each step's round trip is timed without HTTP, and the stages report their compute time with every
 * token. Per step: overhead = round trip − Σ stage compute. Added cost per hop = (overhead_k − overhead_1) / k.
 * For scale it also prints two floors measured the same way between two plain processes: the frame's bytes over
 * TCP, and over TCP with msgpack + AES-256-GCM (what a direct activation channel without Noise + yamux would cost).
 * The models are generated once and cached in os.tmpdir(). Two shared cores: read the load averages printed.
 */
import '../packages/node/src/polyfills.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import net from 'node:net';
import { mkdir, rename, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import { createConsoleLogger, GREEDY, startEdgeNode, type EdgeNode } from '../packages/node/src/index.js';
import type { StepTiming } from '../packages/node/src/engine/bench-probe.js';
import { generateSyntheticModel } from '../packages/testkit/src/index.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import { FrameCodec } from '../packages/node/src/network/frame-codec.js';
import { ACTIVATION_FRAME_VERSION, parseActivationFrame, type ActFrame } from '../packages/node/src/pipeline/activation-frame.js';
import { ClusterHarness, REPO_ROOT, type RunningNode } from '../test/support/cluster-harness.js';

const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const TOKENIZER_DIR = join(SHARED, 'smollm2-135m-instruct-tokenizer');
const CACHE = join(tmpdir(), 'edge-node-bench');
/** Same file as bench:engine (same preset, dtype, seed and tokenizer). */
const FULL_MODEL = join(CACHE, 'smollm2-135m-f32-seed0.gguf');
/** SmolLM2 width, 3 layers, the built-in 512-piece vocabulary: the frames of the full model, a fraction of its compute. */
const RELAY_MODEL = join(CACHE, 'smollm2-width-3-layers-vocab512-f32-seed0.gguf');

const { values: opts } = parseArgs({
  options: {
    tokens: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '16' },
    runs: { type: 'string', default: '3' },
    'prompt-tokens': { type: 'string', default: '16' },
    nodes: { type: 'string', default: '1,2,3' },
    models: { type: 'string', default: 'full,relay' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  process.stdout.write('usage: tsx scripts/bench-pipeline.ts [--tokens 64] [--warmup 16] [--runs 3] [--prompt-tokens 16] [--nodes 1,2,3] [--models full,relay]\n');
  process.exit(0);
}
const TOKENS = Number(opts.tokens);
const WARMUP = Number(opts.warmup);
const RUNS = Number(opts.runs);
const PROMPT_TOKENS = Number(opts['prompt-tokens']);
const NODE_COUNTS = opts.nodes.split(',').map(Number);
const MODELS = new Set(opts.models.split(','));

interface Series {
  model: string;
  k: number;
  split: number[];
  /** Per decode step, ms. */
  roundTrip: number[];
  compute: number[];
  overhead: number[];
  /** Per stage, median compute ms. */
  stageMedians: number[];
  /** Mean ms/token of one HTTP /v1/completions request with ignore_eos (includes HTTP and detokenizing). */
  httpMsPerToken: number;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const median = (xs: number[]) => quantile(xs, 0.5);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

async function ensureModel(path: string, what: string, make: (out: string) => Promise<unknown>): Promise<void> {
  if (existsSync(path)) return;
  await mkdir(CACHE, { recursive: true });
  const partial = `${path}.partial-${process.pid}`;
  const t0 = performance.now();
  process.stderr.write(`generating ${path} (${what})... `);
  try {
    await make(partial);
    await rename(partial, path);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

async function promptIds(modelPath: string, n: number): Promise<number[]> {
  const model = await openModel(modelPath);
  try {
    const tok = await loadTokenizer(model.tokenizer);
    const text = 'The quick brown fox jumps over the lazy dog while a small robot hums a tune about rivers and mountains. ';
    const ids = tok.encode(text.repeat(Math.ceil(n / 10) + 2), { addBos: true });
    return ids.slice(0, n);
  } finally {
    await model.close();
  }
}

/** Runs one request of `tokens` decode steps through the coordinator's executor; returns the decode steps' timings. */
async function decode(node: EdgeNode, rid: string, prompt: number[], tokens: number) {
  const ex = node.pipeline!.executor;
  const request = { id: rid, promptTokens: prompt, sampling: { ...GREEDY }, contextLength: prompt.length + tokens + 1 };
  let token = await ex.begin(request);
  try {
    for (let i = 0; i < tokens; i++) token = await ex.step(rid, token);
    return ex.timings(rid).slice(1); // the first timing is the prefill
  } finally {
    await ex.end(rid);
  }
}

async function measure(h: ClusterHarness, modelPath: string, modelName: string, split: number[], prompt: number[]): Promise<Series> {
  const k = split.length;
  const tag = `${modelName}-${k}`;
  mkdirSync(h.artifactsDir, { recursive: true });
  const logLines: string[] = [];
  const coordinator = await startEdgeNode({
    name: 'a',
    dataDir: join(h.tempDir, `a-${tag}`),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    apiPort: 0,
    engine: { threads: 1 },
    modelPath,
    split,
    contextLength: 512,
    logger: createConsoleLogger({ prefix: 'a', write: (_l, line) => logLines.push(line) }),
  });
  const others: RunningNode[] = [];
  try {
    const args = ['--model', modelPath, '--split', split.join(','), '--no-mdns', '--context', '512', '--bootstrap', coordinator.host.addresses()[0]];
    for (let i = 1; i < k; i++) others.push(h.spawnNode({ name: `${String.fromCharCode(97 + i)}-${tag}`, args }));
    await Promise.all(others.map((n) => n.ready(60_000)));
    await h.waitFor(
      () => coordinator.membership.members().filter((m) => m.stageInfo?.model).length === k - 1,
      30_000,
      `${k - 1} node(s) to join with the model`,
    );
    // Warm-up: plans the ring, loads every stage, opens the streams, lets the JIT settle.
    await decode(coordinator, `warm-${tag}`, prompt, WARMUP);
    const steps: StepTiming[] = [];
    for (let r = 0; r < RUNS; r++) steps.push(...(await decode(coordinator, `run-${tag}-${r}`, prompt, TOKENS)));
    const plan = coordinator.pipeline!.activePlan!;
    if (plan.stages.length !== k) throw new Error(`expected a ${k}-stage plan, got ${plan.id}`);

    // The same through HTTP, as a client sees it (ignore_eos: exactly TOKENS + 1 tokens).
    const models = (await (await fetch(`${coordinator.api.url}/v1/models`)).json()) as { data: { id: string }[] };
    const t0 = performance.now();
    const res = await fetch(`${coordinator.api.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: models.data[0].id, prompt, max_tokens: TOKENS + 1, temperature: 0, ignore_eos: true }),
    });
    const body = (await res.json()) as { usage?: { completion_tokens: number }; error?: unknown };
    const httpMs = performance.now() - t0;
    if (body.usage?.completion_tokens !== TOKENS + 1) throw new Error(`HTTP request with ignore_eos gave ${JSON.stringify(body).slice(0, 300)}`);

    const compute = steps.map((s) => s.stageMs.reduce((a, b) => a + b, 0));
    return {
      model: modelName,
      k,
      split,
      roundTrip: steps.map((s) => s.roundTripMs),
      compute,
      overhead: steps.map((s, i) => s.roundTripMs - compute[i]),
      stageMedians: split.map((_, i) => median(steps.map((s) => s.stageMs[i] ?? NaN))),
      httpMsPerToken: httpMs / (TOKENS + 1),
    };
  } finally {
    for (const n of others) n.kill('SIGTERM');
    await Promise.all(others.map((n) => n.exited));
    await coordinator.stop();
  }
}

/** What one hop costs in this process, without the network: encode, decode and validate a decode-step frame. */
function frameCosts(hidden: number): { encodeUs: number; decodeUs: number; validateUs: number; bytes: number } {
  const codec = new FrameCodec();
  const frame: ActFrame = {
    t: 'act',
    v: ACTIVATION_FRAME_VERSION,
    rid: 'cmpl-00000000-0000-0000-0000-000000000000',
    stage: 1,
    step: 12,
    pos: 40,
    n: 1,
    final: true,
    hidden: new Float32Array(hidden).map((_, i) => Math.sin(i)),
    stageMs: [2.5],
  };
  const limits = { maxRows: 1000, hiddenSize: hidden, vocabSize: 49152, maxRoute: 64, maxContext: 512 };
  const N = 20_000;
  let bytes = 0;
  let t = performance.now();
  for (let i = 0; i < N; i++) bytes = codec.encode(frame).byteLength;
  const encodeUs = ((performance.now() - t) / N) * 1000;
  const wire = codec.encode(frame);
  t = performance.now();
  let decoded: unknown;
  for (let i = 0; i < N; i++) decoded = codec.decodeFrame(wire);
  const decodeUs = ((performance.now() - t) / N) * 1000;
  t = performance.now();
  for (let i = 0; i < N; i++) parseActivationFrame(decoded, limits);
  const validateUs = ((performance.now() - t) / N) * 1000;
  return { encodeUs, decodeUs, validateUs, bytes };
}

/**
 * Floors under any hop here, between two processes with the receiver idle 10 ms before each message (as a stage is
 * between tokens): half the median round trip of
 *  - `plain`: the 2.4 KB frame's bytes over plain TCP, echoed back;
 *  - `sealed`: what a direct activation channel would do instead of Noise + yamux: msgpack the act frame, seal it
 *    with AES-256-GCM (node:crypto), and the other side opens it and answers with a sealed token frame.
 */
async function directTcpHopMs(mode: 'plain' | 'sealed', count = 300): Promise<number> {
  const child = spawn(process.execPath, ['-e', DIRECT_TCP_PEER, mode], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve(Number(m)));
      child.once('exit', (code) => reject(new Error(`TCP peer exited (${code})`)));
    });
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    const packr = new Packr({ moreTypes: true, useRecords: false });
    const key = Buffer.alloc(32, 1);
    let counter = 0;
    const hidden = new Float32Array(576).map((_, i) => Math.sin(i));
    const message = (step: number): Buffer => {
      const body = packr.pack({ t: 'act', v: 1, rid: 'cmpl-00000000-0000-0000-0000-000000000000', stage: 1, step, pos: step, n: 1, final: true, hidden, stageMs: [1.5] });
      if (mode === 'plain') return Buffer.concat([Buffer.alloc(4), body]); // echoed back as they are
      // Nonces: a counter, at byte 8 this way and byte 4 the other way, so the two directions never share one.
      const iv = Buffer.alloc(12);
      iv.writeUInt32BE(counter++, 8);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const sealed = Buffer.concat([c.update(body), c.final()]);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(12 + 16 + sealed.length);
      return Buffer.concat([head, iv, c.getAuthTag(), sealed]);
    };
    let pending: Buffer = Buffer.alloc(0);
    let wake: (() => void) | null = null;
    sock.on('data', (d: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      if (mode === 'plain') {
        if (pending.length >= expectPlain) {
          pending = pending.subarray(expectPlain);
          wake?.();
        }
        return;
      }
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const f = pending.subarray(4, 4 + pending.readUInt32BE(0));
        pending = pending.subarray(4 + f.length);
        const dec = createDecipheriv('aes-256-gcm', key, f.subarray(0, 12));
        dec.setAuthTag(f.subarray(12, 28));
        packr.unpack(Buffer.concat([dec.update(f.subarray(28)), dec.final()]));
        wake?.();
      }
    });
    let expectPlain = message(0).length;
    const rtts: number[] = [];
    for (let i = 0; i < count; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const m = message(i);
      expectPlain = m.length;
      const t0 = performance.now();
      const back = new Promise<void>((r) => (wake = r));
      sock.write(m);
      await back;
      rtts.push(performance.now() - t0);
    }
    sock.destroy();
    return median(rtts.slice(20)) / 2;
  } finally {
    child.kill();
  }
}

/** The other process of directTcpHopMs (CommonJS, run with `node -e`; argv[1] is the mode). */
const DIRECT_TCP_PEER = `
const net = require('node:net');
const { createCipheriv, createDecipheriv } = require('node:crypto');
const { Packr } = require('msgpackr');
const mode = process.argv[1];
const packr = new Packr({ moreTypes: true, useRecords: false });
const key = Buffer.alloc(32, 1);
let counter = 0;
const srv = net.createServer((s) => {
  s.setNoDelay(true);
  if (mode === 'plain') return s.on('data', (d) => s.write(d));
  let pending = Buffer.alloc(0);
  s.on('data', (d) => {
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const f = pending.subarray(4, 4 + pending.readUInt32BE(0));
      pending = pending.subarray(4 + f.length);
      const dec = createDecipheriv('aes-256-gcm', key, f.subarray(0, 12));
      dec.setAuthTag(f.subarray(12, 28));
      const m = packr.unpack(Buffer.concat([dec.update(f.subarray(28)), dec.final()]));
      const iv = Buffer.alloc(12);
      iv.writeUInt32BE(counter++, 4);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const sealed = Buffer.concat([c.update(packr.pack({ t: 'token', v: 1, rid: m.rid, step: m.step, token: 7, stageMs: [1.5, 1.2] })), c.final()]);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(12 + 16 + sealed.length);
      s.write(Buffer.concat([head, iv, c.getAuthTag(), sealed]));
    }
  });
});
srv.listen(0, '127.0.0.1', () => process.send(srv.address().port));
`;

function printTable(series: Series[]): void {
  const base = new Map(series.filter((s) => s.k === 1).map((s) => [s.model, s]));
  const rows = [
    ['model', 'nodes', 'split', 'hops', 'ms/token med', 'p95', 'compute med', 'overhead med', 'p95', '+ms/hop (latency)', '+ms/hop (overhead)', 'HTTP ms/token'],
  ];
  for (const s of series) {
    const b = base.get(s.model);
    const perHop = (x: number[], y: number[] | undefined) => (s.k === 1 || !y ? '—' : ((median(x) - median(y)) / s.k).toFixed(3));
    rows.push([
      s.model,
      String(s.k),
      s.split.join(','),
      String(s.k === 1 ? 0 : s.k),
      median(s.roundTrip).toFixed(2),
      quantile(s.roundTrip, 0.95).toFixed(2),
      median(s.compute).toFixed(2),
      median(s.overhead).toFixed(3),
      quantile(s.overhead, 0.95).toFixed(3),
      perHop(s.roundTrip, b?.roundTrip),
      perHop(s.overhead, b?.overhead),
      s.httpMsPerToken.toFixed(2),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    process.stdout.write(r.map((x, c) => (c < 3 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ') + '\n');
    if (i === 0) process.stdout.write(widths.map((w) => '-'.repeat(w)).join('  ') + '\n');
  }
  for (const s of series) if (s.k > 1) process.stdout.write(`  ${s.model} ${s.split.join(',')}: stage compute medians ${s.stageMedians.map((x) => x.toFixed(2)).join(' / ')} ms\n`);
}

async function main(): Promise<void> {
  process.stdout.write(`load average at start: ${load()}\n`);
  await ensureModel(FULL_MODEL, 'SmolLM2-135M shape, F32, SmolLM2 tokenizer', (out) =>
    generateSyntheticModel({ preset: 'smollm2-135m', format: 'gguf', dtype: 'F32', seed: 0, tokenizerDir: TOKENIZER_DIR, outPath: out }),
  );
  if (MODELS.has('relay')) {
    await ensureModel(RELAY_MODEL, 'SmolLM2 width, 3 layers, the built-in 512-token vocabulary', (out) =>
      generateSyntheticModel({ preset: 'smollm2-135m', numLayers: 3, format: 'gguf', dtype: 'F32', seed: 0, padVocab: false, outPath: out }),
    );
  }
  const h = new ClusterHarness('bench-pipeline');
  const series: Series[] = [];
  try {
    const splits: Record<number, number[]> = { 1: [30], 2: [15, 15], 3: [10, 10, 10] };
    const relaySplits: Record<number, number[]> = { 1: [3], 2: [2, 1], 3: [1, 1, 1] };
    if (MODELS.has('full')) {
      const full = await promptIds(FULL_MODEL, PROMPT_TOKENS);
      for (const k of NODE_COUNTS) {
        series.push(await measure(h, FULL_MODEL, 'smollm2-135m', splits[k], full));
        process.stderr.write(`  smollm2-135m on ${k} node(s) done (load ${load()})\n`);
      }
    }
    if (MODELS.has('relay')) {
      const small = await promptIds(RELAY_MODEL, PROMPT_TOKENS);
      for (const k of NODE_COUNTS) {
        series.push(await measure(h, RELAY_MODEL, '3-layer-576', relaySplits[k], small));
        process.stderr.write(`  3-layer on ${k} node(s) done (load ${load()})\n`);
      }
    }
  } finally {
    await h.cleanup();
  }
  process.stdout.write(`\nPer-token decode latency, ${TOKENS} tokens × ${RUNS} runs after a ${WARMUP}-token warm-up, ${PROMPT_TOKENS}-token prompt, one compute thread per node, loopback (ms)\n\n`);
  printTable(series);
  const plain = await directTcpHopMs('plain');
  const sealed = await directTcpHopMs('sealed');
  process.stdout.write(
    `\nOne way between two processes over plain TCP, receiver idle 10 ms before each message (median): ` +
      `${plain.toFixed(3)} ms for the frame's bytes; ${sealed.toFixed(3)} ms with msgpack + AES-256-GCM and a sealed token frame back ` +
      `(what a direct activation channel without Noise + yamux would cost)\n`,
  );
  const f = frameCosts(576);
  process.stdout.write(
    `In-process cost of one decode-step frame (${f.bytes} B): encode ${f.encodeUs.toFixed(1)} µs, decode ${f.decodeUs.toFixed(1)} µs, validate ${f.validateUs.toFixed(1)} µs\n`,
  );
  process.stdout.write(`goal: ≤ 0.5 ms median added per hop on loopback\nload average at end: ${load()} (2 cores)\nnode logs: ${join(REPO_ROOT, 'test-artifacts', 'bench-pipeline')}\n`);
}

await main();
