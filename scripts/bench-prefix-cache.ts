/**
 * The prefix cache on a chat: a 10-turn conversation through 2 nodes (real `edge-node start` processes on loopback,
 * the official `openai` client, greedy), once on a pair with the default prefix cache and once on a pair with
 * `--prefix-cache 0`, turn by turn (one pair computes at a time). Prints each turn's prompt tokens, cached tokens and
 * time to first token on both, checks every turn's text is the same on both, and the speed-up of turn 10.
 *
 *   npx tsx scripts/bench-prefix-cache.ts [--model FILE.gguf] [--turns 10] [--max-tokens 16] [--split 8,8] [--json OUT]
 *
 * Default model: the 300M-shaped Q8_0 file with random weights that `npm run bench:engine` generates into
 * os.tmpdir()/edge-node-bench (run `npm run bench:engine -- --models 300m --types q8_0 --runs 1` once to make it).
 * Two shared cores: the load average is printed with the figures.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { ClusterHarness, type RunningNode } from '../test/support/cluster-harness.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string', default: join(tmpdir(), 'edge-node-bench', 'llama-300m-q8_0-seed0.gguf') },
    turns: { type: 'string', default: '10' },
    'max-tokens': { type: 'string', default: '16' },
    split: { type: 'string', default: '8,8' },
    json: { type: 'string' },
  },
});
const model = v.model!;
if (!existsSync(model)) {
  console.error(`no model at ${model}: make it with \`npm run bench:engine -- --models 300m --types q8_0 --runs 1\`, or give --model FILE.gguf`);
  process.exit(2);
}
const turns = Number(v.turns);
const maxTokens = Number(v['max-tokens']);

/** User turns of a chat: different sentences, ~30 tokens each. */
const USER = [
  'I am planning a trip to the mountains next month. What should I pack for a week of hiking and camping?',
  'Good. How heavy should my backpack be, and how do I keep the weight down without leaving out safety gear?',
  'What about water? There are streams on the route, but I am not sure whether I should filter or boil it.',
  'And food: I would like hot meals in the evening. Which stove works best above two thousand metres?',
  'The weather forecast says storms in the afternoons. How should I plan each day around that risk?',
  'If somebody in the group twists an ankle far from the road, what is the right thing to do first?',
  'How do I read the contour lines on a paper map, and when is a compass better than a phone?',
  'We will sleep in a tent. How do I choose a good spot for it, away from wind, water and falling rocks?',
  'Is it worth carrying a satellite messenger, or is telling someone our route and return time enough?',
  'Thank you. Could you sum up the five most important points of this whole conversation in a short list?',
  'One more question: how should I train during the next four weeks to be ready for the long climbs?',
  'And what should I do in the first days back home to recover well from such a demanding week?',
];

interface Pair {
  a: RunningNode;
  b: RunningNode;
  client: OpenAI;
}

const h = new ClusterHarness('bench-prefix-cache');
const startPair = async (prefix: string, extra: string[]): Promise<Pair> => {
  const args = ['--model', model, '--split', v.split!, '--no-mdns', '--context', '2048', ...extra];
  const a = await h.startNode({ name: `${prefix}a`, args, timeoutMs: 120_000 });
  const b = await h.startNode({ name: `${prefix}b`, args: [...args, '--bootstrap', a.addresses[0]], timeoutMs: 120_000 });
  const sees = async (n: RunningNode, other: RunningNode) => {
    const c = (await (await fetch(`${n.apiUrl}/v1/cluster`)).json()) as { peers: { peerId: string; stageInfo: { model?: string } | null }[] };
    return c.peers.some((p) => p.peerId === other.peerId && p.stageInfo?.model);
  };
  await h.waitFor(async () => (await sees(a, b)) && (await sees(b, a)), 60_000, `${prefix}a and ${prefix}b to see each other`);
  return { a, b, client: new OpenAI({ baseURL: `${a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0, timeout: 600_000 }) };
};

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;
interface Turn {
  text: string;
  ttftMs: number;
  totalMs: number;
  promptTokens: number;
  cachedTokens: number;
}

const modelId = basename(model).replace(/\.gguf$/i, '');
const ask = async (p: Pair, messages: Message[]): Promise<Turn> => {
  const t0 = performance.now();
  const stream = await p.client.chat.completions.create({ model: modelId, messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let ttftMs = NaN;
  let text = '';
  let usage: OpenAI.Completions.CompletionUsage | undefined;
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta.content;
    // The first chunk with content: the first token (random weights may write nothing visible; then the first chunk).
    if (delta != null && Number.isNaN(ttftMs) && (delta.length > 0 || chunk.choices[0]?.finish_reason)) ttftMs = performance.now() - t0;
    if (delta) text += delta;
    if (chunk.usage) usage = chunk.usage;
  }
  const totalMs = performance.now() - t0;
  return { text, ttftMs: Number.isNaN(ttftMs) ? totalMs : ttftMs, totalMs, promptTokens: usage?.prompt_tokens ?? 0, cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0 };
};

try {
  process.stderr.write(`starting 2 pairs of nodes (${v.split}) on ${model}...\n`);
  const on = await startPair('cache-', []);
  const off = await startPair('nocache-', ['--prefix-cache', '0']);
  // Each pair's first request pays one-off costs (first plan, first pass over the weights): a warm-up.
  await ask(on, [{ role: 'user', content: 'Hello.' }]);
  await ask(off, [{ role: 'user', content: 'Hello.' }]);
  const history: Message[] = [{ role: 'system', content: 'You are a helpful assistant for outdoor trips.' }];
  const rows: { turn: number; cache: Turn; noCache: Turn }[] = [];
  let identical = true;
  console.log('turn  prompt  cached   TTFT cache   TTFT no cache   speed-up  same text');
  for (let t = 0; t < turns; t++) {
    history.push({ role: 'user', content: USER[t % USER.length] });
    const cache = await ask(on, history);
    const noCache = await ask(off, history);
    const same = cache.text === noCache.text;
    identical &&= same;
    rows.push({ turn: t + 1, cache, noCache });
    console.log(
      `${String(t + 1).padStart(4)}  ${String(cache.promptTokens).padStart(6)}  ${String(cache.cachedTokens).padStart(6)}  ${cache.ttftMs.toFixed(0).padStart(9)} ms  ${noCache.ttftMs.toFixed(0).padStart(11)} ms  ${(noCache.ttftMs / cache.ttftMs).toFixed(1).padStart(7)}×  ${same ? 'yes' : 'NO'}`,
    );
    history.push({ role: 'assistant', content: cache.text });
  }
  const last = rows[rows.length - 1];
  const speedup = last.noCache.ttftMs / last.cache.ttftMs;
  const metrics = await (await fetch(`${on.a.apiUrl}/v1/cluster`)).json() as { serving: { prefixCache: unknown } };
  console.log(`turn ${last.turn}: time to first token ${last.noCache.ttftMs.toFixed(0)} → ${last.cache.ttftMs.toFixed(0)} ms (${speedup.toFixed(1)}×; goal ≥ 5×), texts ${identical ? 'identical on every turn' : 'DIFFER'}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`prefix cache of the coordinator's node: ${JSON.stringify(metrics.serving.prefixCache)}`);
  if (v.json) writeFileSync(v.json, JSON.stringify({ model, split: v.split, maxTokens, rows, speedup, identical, loadavg: loadavg() }, null, 2));
  if (!identical) process.exitCode = 1;
} finally {
  await h.cleanup();
}
