/**
 * Soak: `--requests` (default 300) completions at concurrency `--concurrency` (default 4) through 3 node processes
 * on loopback (stories260K, split 2,2,1, coordinator a). Mixed prompts and lengths; every third request streams
 * (SSE), every fifth is a chat completion. Every request must complete; greedy answers to the same prompt must be
 * identical. Prints each node's RSS (VmRSS) before and after, latency percentiles and throughput.
 * Node logs: test-artifacts/soak/.
 *
 *   npx tsx scripts/soak.ts [--requests 300] [--concurrency 4]
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ClusterHarness, type RunningNode } from '../test/support/cluster-harness.js';
import { STORIES_260K, streamCompletion } from '../test/support/chaos-scenario.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '300' }, concurrency: { type: 'string', default: '4' } } });
const total = Number(values.requests);
const concurrency = Number(values.concurrency);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

const PROMPTS = [
  'Once upon a time',
  'Lily and Ben went to the park',
  'The little dog was sad because',
  'One day, a big bird',
  'Tom had a red ball. He',
  'The sun was shining and',
  'Sara wanted to bake a cake for her mom',
  'There was a tiny fish in the sea',
];

function rssMb(node: RunningNode): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${node.proc.pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Outcome {
  ms: number;
  tokens: number;
  ok: boolean;
  problem: string;
}

const h = new ClusterHarness('soak');
let failures = 0;
try {
  console.log(`load average ${load()}`);
  const args = ['--model', STORIES_260K, '--no-mdns', '--split', '2,2,1', '--concurrency', String(concurrency)];
  const a = await h.startNode({ name: 'a', args });
  const [b, c] = await Promise.all([
    h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] }),
    h.startNode({ name: 'c', args: [...args, '--bootstrap', a.addresses[0]] }),
  ]);
  await h.waitForPipelineMembers([a, b, c]);
  const nodes = [a, b, c];
  const model = await a.modelId();
  await a.complete({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 }); // stages loaded
  const rssBefore = nodes.map(rssMb);
  console.log(`RSS before: ${nodes.map((n, i) => `${n.name} ${rssBefore[i]} MB`).join(', ')}`);

  const greedy = new Map<string, string>(); // prompt|max_tokens → first answer, for the identity check
  const outcomes: Outcome[] = [];
  let next = 0;
  const t0 = performance.now();
  const one = async (i: number): Promise<Outcome> => {
    const prompt = PROMPTS[i % PROMPTS.length];
    const maxTokens = [16, 48, 96, 128][i % 4];
    const temperature = i % 7 === 0 ? 0.8 : 0;
    const stream = i % 3 === 0;
    const chat = i % 5 === 0;
    const start = performance.now();
    let text: string;
    let tokens: number;
    if (stream && !chat) {
      const r = await streamCompletion(a.apiUrl, { model, prompt, max_tokens: maxTokens, temperature, ignore_eos: true }, 120_000);
      if (r.error || !r.done) return { ms: performance.now() - start, tokens: r.chunks, ok: false, problem: r.error ?? 'stream ended without [DONE]' };
      text = r.text;
      tokens = r.chunks;
    } else {
      const url = `${a.apiUrl}/v1/${chat ? 'chat/completions' : 'completions'}`;
      const body = chat
        ? { model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, temperature }
        : { model, prompt, max_tokens: maxTokens, temperature, ignore_eos: true };
      const { status, json } = await h.postJson(url, body, 120_000);
      if (status !== 200) return { ms: performance.now() - start, tokens: 0, ok: false, problem: `HTTP ${status}: ${JSON.stringify(json).slice(0, 200)}` };
      const j = json as { choices: { text?: string; message?: { content: string } }[]; usage: { completion_tokens: number } };
      text = j.choices[0].text ?? j.choices[0].message?.content ?? '';
      tokens = j.usage.completion_tokens;
    }
    if (temperature === 0 && !chat) {
      const key = `${prompt}|${maxTokens}`;
      const seen = greedy.get(key);
      if (seen === undefined) greedy.set(key, text);
      else if (seen !== text) return { ms: performance.now() - start, tokens, ok: false, problem: `greedy answer differs for "${key}"` };
    }
    return { ms: performance.now() - start, tokens, ok: true, problem: '' };
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const o = await one(i).catch((err: Error) => ({ ms: 0, tokens: 0, ok: false, problem: err.message }));
        outcomes.push(o);
        if (!o.ok) console.log(`request ${i}: FAILED: ${o.problem}`);
        if (outcomes.length % 50 === 0) {
          // RSS along the way: growth that flattens is warm-up, growth that keeps on is a leak.
          console.log(`${outcomes.length}/${total} done (${((performance.now() - t0) / 1000).toFixed(0)} s); RSS ${nodes.map((n) => `${n.name} ${rssMb(n)}`).join(', ')} MB`);
        }
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  failures = outcomes.filter((o) => !o.ok).length;
  const lat = outcomes.filter((o) => o.ok).map((o) => o.ms).sort((x, y) => x - y);
  const tokens = outcomes.reduce((s, o) => s + o.tokens, 0);
  await new Promise((r) => setTimeout(r, 2000));
  const rssAfter = nodes.map(rssMb);
  const sessions = await Promise.all(nodes.map(async (n) => ((await n.cluster()) as { serving: { kvSessions: number } }).serving.kvSessions));
  console.log(`completed ${total - failures}/${total} in ${wallS.toFixed(1)} s at concurrency ${concurrency}; ${tokens} tokens, ${(tokens / wallS).toFixed(0)} tok/s`);
  console.log(
    `latency ms: p50 ${percentile(lat, 50).toFixed(0)}, p90 ${percentile(lat, 90).toFixed(0)}, p99 ${percentile(lat, 99).toFixed(0)}, max ${lat.at(-1)?.toFixed(0)}`,
  );
  console.log(`RSS after:  ${nodes.map((n, i) => `${n.name} ${rssAfter[i]} MB (${rssAfter[i] - rssBefore[i] >= 0 ? '+' : ''}${rssAfter[i] - rssBefore[i]})`).join(', ')}`);
  console.log(`KV sessions left: ${nodes.map((n, i) => `${n.name} ${sessions[i]}`).join(', ')}; load average ${load()}`);
  if (sessions.some((s) => s !== 0)) failures++;
} finally {
  await h.cleanup();
}
process.exit(failures === 0 ? 0 : 1);
