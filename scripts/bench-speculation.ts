/**
 * Speculative decoding through 3 nodes (real `edge-node start` processes on loopback, split over the model's
 * layers): decode tok/s without speculation, with prompt-lookup drafts, and with the model as its own draft (its own
 * greedy answer from the run before sent as the request's `prediction`: every draft accepted, drafting free — the
 * upper bound of what verification in one pass can give). Runs are interleaved (off, lookup, own draft, repeated),
 * every answer is checked against the one without speculation. Prints tokens per walk and acceptance beside each,
 * and the median of each repeat's ratio to the off run beside it ("paired": steadier under a drifting load).
 *
 *   npx tsx scripts/bench-speculation.ts [--model FILE.gguf] [--split 6,5,5] [--tokens 96] [--repeats 3] [--json OUT]
 *
 * Two workloads: the default model (the 300M-shaped Q8_0 file with random weights that `npm run bench:engine`
 * generates into os.tmpdir()/edge-node-bench) on a random prompt — random weights do not quote their prompt, so
 * its lookup figure is not the quoting workload's — and stories260K (real weights, tiny) on a prompt it goes on
 * quoting. Two shared cores: the load average is printed with the figures.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClusterHarness, type RunningNode } from '../test/support/cluster-harness.js';
import { runSingleDevice, STORIES_GGUF } from '../test/support/single-device-run.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string', default: join(tmpdir(), 'edge-node-bench', 'llama-300m-q8_0-seed0.gguf') },
    split: { type: 'string', default: '6,5,5' },
    tokens: { type: 'string', default: '96' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
if (!existsSync(v.model!)) {
  console.error(`no model at ${v.model}: make it with \`npm run bench:engine -- --models 300m --types q8_0 --runs 1\`, or give --model FILE.gguf`);
  process.exit(2);
}
const tokens = Number(v.tokens);
const repeats = Number(v.repeats);

interface Run {
  text: string;
  completionTokens: number;
  decodeTokPerS: number;
  drafted: number;
  accepted: number;
  walks: number;
  tokensPerWalk: number;
  /** The draft length k the request's tuner chose last (from measured acceptance and costs). */
  draftLength: number;
}
type Mode = 'off' | 'lookup' | 'own draft';

/**
 * One completion (not streamed: random weights' text may come out only at the end, as bytes complete characters)
 * and its wall time; decode tok/s subtracts the time of the same prompt with one token (`oneTokenMs`).
 */
async function complete(node: RunningNode, model: string, body: Record<string, unknown>, oneTokenMs = 0): Promise<Run & { ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${node.apiUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: tokens, temperature: 0, ignore_eos: true, ...body }),
  });
  if (res.status !== 200) throw new Error(`completion answered ${res.status}: ${await res.text()}`);
  const json = (await res.json()) as {
    choices: { text: string }[];
    usage: { completion_tokens: number; speculation?: { drafted_tokens: number; accepted_tokens: number; decode_walks: number; tokens_per_walk: number; draft_length: number } };
  };
  const ms = performance.now() - t0;
  const { usage } = json;
  const text = json.choices[0].text;
  const s = usage.speculation;
  return {
    text,
    completionTokens: usage.completion_tokens,
    ms,
    decodeTokPerS: ((usage.completion_tokens - 1) / (ms - oneTokenMs)) * 1000,
    drafted: s?.drafted_tokens ?? 0,
    accepted: s?.accepted_tokens ?? 0,
    walks: s?.decode_walks ?? usage.completion_tokens - 1,
    tokensPerWalk: s?.tokens_per_walk ?? 1,
    draftLength: s?.draft_length ?? 0,
  };
}

const h = new ClusterHarness('bench-speculation');
const hStories = new ClusterHarness('bench-speculation-stories');
async function ring(h: ClusterHarness, model: string, split: string): Promise<RunningNode> {
  const args = ['--model', model, '--split', split, '--no-mdns', '--context', '1024'];
  const a = await h.startNode({ name: 'a', args, timeoutMs: 120_000 });
  const rest = await Promise.all(['b', 'c'].map((name) => h.startNode({ name, args: [...args, '--bootstrap', a.addresses[0]], timeoutMs: 120_000 })));
  await h.waitForPipelineMembers([a, ...rest]);
  return a;
}

const QUOTING = 'Tom had a big red ball. Tom liked to play with the ball in the park. One day, Tom lost the ball in the park. Tom was sad. Tom';

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/**
 * The workload's prompt as token ids and its greedy answer's ids, from `edge-node run` on one device (the same tokens
 * as the ring's: batch-invariant kernels): the own-draft runs send those ids as their prediction, exactly.
 */
async function reference(modelFile: string, text: string): Promise<{ prompt: number[]; answer: number[] }> {
  const r = await runSingleDevice(modelFile, text, tokens, ['--speculate', 'off', '--ignore-eos']);
  return { prompt: r.promptTokens, answer: r.tokens };
}

async function workload(name: string, node: RunningNode, ref: { prompt: number[]; answer: number[] }): Promise<Record<Mode, Run[]> & { identical: boolean }> {
  const model = await node.modelId();
  const prompt = ref.prompt;
  await complete(node, model, { prompt, max_tokens: 8, speculate: false }); // warm-up: plan, first pass over the weights
  const runs: Record<Mode, Run[]> = { off: [], lookup: [], 'own draft': [] };
  let identical = true;
  for (let r = 0; r < repeats; r++) {
    const one = (await complete(node, model, { prompt, max_tokens: 1, speculate: false })).ms;
    const off = await complete(node, model, { prompt, speculate: false }, one);
    const lookup = await complete(node, model, { prompt, speculate: true }, one);
    const own = await complete(node, model, { prompt, prediction: { type: 'content', content: ref.answer } }, one);
    identical &&= lookup.text === off.text && own.text === off.text;
    runs.off.push(off);
    runs.lookup.push(lookup);
    runs['own draft'].push(own);
  }
  const base = median(runs.off.map((x) => x.decodeTokPerS));
  console.log(`\n${name}: ${repeats} interleaved repeats of ${tokens} tokens, greedy; texts ${identical ? 'identical' : 'DIFFER'}`);
  // Each repeat's ratio to the off run beside it, then their median: a load that drifts over the run (other
  // processes on the cores) moves both runs of a repeat alike.
  const paired = (mode: Mode) => median(runs[mode].map((x, i) => x.decodeTokPerS / runs.off[i].decodeTokPerS));
  console.log('mode        decode tok/s (median, min–max)   vs off   paired   tokens/walk   k (last)   accepted/drafted');
  for (const mode of ['off', 'lookup', 'own draft'] as Mode[]) {
    const xs = runs[mode].map((x) => x.decodeTokPerS);
    const drafted = runs[mode].reduce((n, x) => n + x.drafted, 0);
    const accepted = runs[mode].reduce((n, x) => n + x.accepted, 0);
    const tpw = median(runs[mode].map((x) => x.tokensPerWalk));
    const ks = runs[mode].map((x) => x.draftLength).join(',');
    console.log(
      `${mode.padEnd(10)}  ${median(xs).toFixed(1).padStart(8)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`.padEnd(44) +
        `${(median(xs) / base).toFixed(2).padStart(5)}×   ${paired(mode).toFixed(2).padStart(5)}×   ${tpw.toFixed(2).padStart(9)}   ${ks.padStart(8)}   ${drafted > 0 ? `${accepted}/${drafted} (${((accepted / drafted) * 100).toFixed(0)} %)` : '—'}`,
    );
  }
  // What the coordinator measured: the acceptance, tokens per walk and the cost of a row that chose each k.
  const cluster = (await (await fetch(`${node.apiUrl}/v1/cluster`)).json()) as { serving: { speculation: unknown } };
  console.log(`coordinator's speculation: ${JSON.stringify(cluster.serving.speculation)}`);
  return { ...runs, identical };
}

const results: Record<string, unknown> = {};
let ok = true;
try {
  console.log(`load average at the start ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  process.stderr.write(`reference answers on one device, then 3 nodes (${v.split}) on ${v.model}...\n`);
  const randomRef = await reference(v.model!, 'The committee reviewed the proposal in detail and asked the authors to summarise the main findings, then');
  const storiesRef = await reference(STORIES_GGUF, QUOTING);
  const a = await ring(h, v.model!, v.split!);
  const random = await workload(`${basename(v.model!)}, random weights (they quote nothing)`, a, randomRef);
  results.random = random;
  ok &&= random.identical;
  await h.cleanup();
  process.stderr.write('3 nodes (2,2,1) on stories260K...\n');
  const s = await ring(hStories, STORIES_GGUF, '2,2,1');
  const quoting = await workload('stories260K, a prompt the story keeps quoting', s, storiesRef);
  results.quoting = quoting;
  ok &&= quoting.identical;
  console.log(`\nload average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  if (v.json) writeFileSync(v.json, JSON.stringify({ model: v.model, split: v.split, tokens, repeats, results, loadavg: loadavg() }, null, 2));
  if (!ok) process.exitCode = 1;
} finally {
  await h.cleanup();
  await hStories.cleanup();
}
