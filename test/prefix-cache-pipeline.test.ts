/**
 * The prefix cache on real 2-node clusters (stories260K, split 2,3, each node its own `edge-node start` process):
 * a multi-turn conversation gives the same greedy text with the cache as without it (`--prefix-cache 0`), later
 * turns report `cached_tokens` and move the metrics; a stage that evicted a prefix the coordinator expected refuses
 * it and the request is prefilled in full with the same text; a cancelled request leaves nothing behind.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { metric } from './support/api-cluster.js';
import { runSingleDevice, STORIES_GGUF } from './support/single-device-run.js';

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;
interface Pair {
  a: RunningNode;
  b: RunningNode;
  client: OpenAI;
}

const USER_TURNS = ['Tell me a story about a cat.', 'What did the cat do next?', 'And then?', 'How did it end?'];
/** An unrelated prompt long enough to push a small cache's blocks out. */
const OTHER = 'Once upon a time there was a big red dog who liked to run in the park with his friends every day, and one day he found a ball.';

describe('prefix cache across requests on a 2-node pipeline', () => {
  const h = new ClusterHarness('prefix-cache');
  let on: Pair; // default cache
  let off: Pair; // --prefix-cache 0: the reference
  let small: Pair; // node b keeps only a few blocks: evicts what the coordinator expects

  const startPair = async (prefix: string, extraA: string[], extraB: string[]): Promise<Pair> => {
    const args = ['--model', STORIES_GGUF, '--split', '2,3', '--no-mdns'];
    const a = await h.startNode({ name: `${prefix}a`, args: [...args, ...extraA] });
    const b = await h.startNode({ name: `${prefix}b`, args: [...args, ...extraB, '--bootstrap', a.addresses[0]] });
    const sees = async (n: RunningNode, other: RunningNode) => {
      const c = (await (await fetch(`${n.apiUrl}/v1/cluster`)).json()) as { peers: { peerId: string; stageInfo: { model?: string } | null }[] };
      return c.peers.some((p) => p.peerId === other.peerId && p.stageInfo?.model);
    };
    await h.waitFor(async () => (await sees(a, b)) && (await sees(b, a)), 15_000, `${prefix}a and ${prefix}b to see each other`);
    const client = new OpenAI({ baseURL: `${a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    // A request plans the ring; the first may still be planned on a alone (b's stage not announced yet): the tests
    // count what each stage keeps, so they start once a plan runs through both.
    await h.waitFor(
      async () => {
        await client.completions.create({ model: 'stories260K', prompt: 'Hi', max_tokens: 1, temperature: 0 });
        const c = (await (await fetch(`${a.apiUrl}/v1/cluster`)).json()) as { plan: { stages: unknown[] } | null };
        return c.plan?.stages.length === 2;
      },
      15_000,
      `${prefix}a to plan a ring through both nodes`,
    );
    return { a, b, client };
  };

  beforeAll(async () => {
    [on, off, small] = await Promise.all([startPair('on-', [], []), startPair('off-', ['--prefix-cache', '0'], ['--prefix-cache', '0']), startPair('small-', [], ['--prefix-cache', '40K'])]);
  }, 60_000);
  afterAll(() => h.cleanup());

  const ask = async (p: Pair, messages: Message[], maxTokens = 24) => {
    const r = await p.client.chat.completions.create({ model: 'stories260K', messages, max_tokens: maxTokens, temperature: 0 });
    return { text: r.choices[0].message.content ?? '', cached: r.usage?.prompt_tokens_details?.cached_tokens ?? -1, prompt: r.usage!.prompt_tokens };
  };

  /** Plays the conversation on both pairs turn by turn; each turn's answer must be the same bits. */
  const converse = async (p: Pair, turns: string[]) => {
    const history: Message[] = [{ role: 'system', content: 'You are a storyteller.' }];
    const out: { text: string; cached: number; prompt: number }[] = [];
    for (const user of turns) {
      history.push({ role: 'user', content: user });
      const [got, ref] = await Promise.all([ask(p, history), ask(off, history)]);
      expect(got.text).toBe(ref.text);
      expect(ref.cached).toBe(0);
      out.push(got);
      history.push({ role: 'assistant', content: got.text });
    }
    return out;
  };

  it('a conversation: the same greedy text as without the cache, cached_tokens on later turns, metrics move', async () => {
    const turns = await converse(on, USER_TURNS);
    expect(turns[0].cached).toBe(0);
    for (const t of turns.slice(1)) {
      // All of the previous turn's prompt at least, in whole 16-token blocks, never the whole prompt.
      expect(t.cached).toBeGreaterThan(0);
      expect(t.cached % 16).toBe(0);
      expect(t.cached).toBeLessThan(t.prompt);
    }
    expect(turns[3].cached).toBeGreaterThanOrEqual(turns[2].prompt - 16);
    expect(await metric(on.a, 'edge_node_prefix_cache_hits')).toBe(3);
    expect(await metric(on.a, 'edge_node_prefix_cache_cached_tokens')).toBe(turns.reduce((s, t) => s + t.cached, 0));
    for (const n of [on.a, on.b]) {
      expect(await metric(n, 'edge_node_prefix_cache_bytes')).toBeGreaterThan(0);
      expect(await metric(n, 'edge_node_prefix_cache_stage_hits')).toBe(3);
      expect(await metric(n, 'edge_node_prefix_cache_budget_bytes')).toBe(256 * 1024 * 1024);
    }
    const cluster = (await (await fetch(`${on.a.apiUrl}/v1/cluster`)).json()) as { serving: { prefixCache: { stage: { blocks: number }; requests: { hits: number } } } };
    expect(cluster.serving.prefixCache.stage.blocks).toBeGreaterThan(0);
    expect(cluster.serving.prefixCache.requests.hits).toBe(3);
    // The node without a cache holds nothing and takes nothing.
    expect(await metric(off.a, 'edge_node_prefix_cache_bytes')).toBe(0);
    expect(await metric(off.a, 'edge_node_prefix_cache_hits')).toBe(0);
  });

  it('the answer is kept too: a prompt that continues it exactly takes the answer\'s blocks from the cache', async () => {
    // The prompt and the tokens a greedy answer to it generates, as ids (the same on one device as through the ring).
    const alone = await runSingleDevice(STORIES_GGUF, 'Once upon a time, in a small village by the sea, there lived a girl', 40, ['--ignore-eos']);
    const complete = async (p: Pair, prompt: number[], maxTokens: number) => {
      const r = await p.client.completions.create({ model: 'stories260K', prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true } as OpenAI.Completions.CompletionCreateParamsNonStreaming);
      return { text: r.choices[0].text, cached: (r.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details?.cached_tokens ?? -1 };
    };
    const first = await complete(on, alone.promptTokens, 40);
    expect(first.text).toBe(alone.text);
    // The release told each stage which tokens it computed after the prompt: all 39 fed back (not the last).
    const next = [...alone.promptTokens, ...alone.tokens, ...alone.promptTokens.slice(1, 20)];
    const refusals = await metric(on.a, 'edge_node_prefix_cache_refusals');
    const [got, ref] = await Promise.all([complete(on, next, 16), complete(off, next, 16)]);
    expect(got.text).toBe(ref.text);
    expect(got.cached).toBe(Math.floor((alone.promptTokens.length + alone.tokens.length - 1) / 16) * 16);
    expect(await metric(on.a, 'edge_node_prefix_cache_refusals')).toBe(refusals);
  });

  it('a stage that evicted the prefix refuses it: the request is opened again after what is left, the same text', async () => {
    const history: Message[] = [{ role: 'system', content: 'You are a storyteller.' }, { role: 'user', content: USER_TURNS[0] }];
    const first = await ask(small, history);
    history.push({ role: 'assistant', content: first.text }, { role: 'user', content: USER_TURNS[1] });
    // Unrelated prompts fill b's few blocks: the conversation's blocks go, least recently used first.
    await ask(small, [{ role: 'user', content: OTHER }], 4);
    await ask(small, [{ role: 'user', content: `${OTHER} The end.` }], 4);
    expect(await metric(small.b, 'edge_node_prefix_cache_evicted_blocks')).toBeGreaterThan(0);
    const refusalsBefore = await metric(small.a, 'edge_node_prefix_cache_refusals');
    const [got, ref] = await Promise.all([ask(small, history), ask(off, history)]);
    expect(got.text).toBe(ref.text);
    expect(await metric(small.a, 'edge_node_prefix_cache_refusals')).toBe(refusalsBefore + 1);
    expect(await metric(small.b, 'edge_node_prefix_cache_stage_misses')).toBeGreaterThan(0);
    // Opened again after what every stage still holds (whole blocks), or with the whole prompt.
    expect(got.cached % 16).toBe(0);
    expect(got.cached).toBeLessThan(got.prompt);
    // b's budget holds: a few 16-token blocks of 3 layers.
    expect(await metric(small.b, 'edge_node_prefix_cache_bytes')).toBeLessThanOrEqual(40 * 1024);
    // And the next turn is served, with the same text, whatever the cache still holds.
    history.push({ role: 'assistant', content: got.text }, { role: 'user', content: USER_TURNS[2] });
    const [next, nextRef] = await Promise.all([ask(small, history), ask(off, history)]);
    expect(next.text).toBe(nextRef.text);
  });

  it('a request cancelled mid-way leaves nothing behind: the conversation goes on, same text, still cached', async () => {
    const history: Message[] = [{ role: 'system', content: 'You are a storyteller.' }, { role: 'user', content: USER_TURNS[0] }];
    const first = await ask(on, history);
    history.push({ role: 'assistant', content: first.text }, { role: 'user', content: USER_TURNS[1] });
    // A continuation of the conversation, cancelled after a few tokens.
    const stream = await on.client.chat.completions.create({ model: 'stories260K', messages: history, max_tokens: 400, temperature: 0, stream: true });
    let chunks = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content && ++chunks === 5) break; // leaving the loop aborts the request
    }
    await h.waitFor(async () => (await Promise.all([on.a, on.b].map((n) => metric(n, 'edge_node_kv_sessions')))).every((s) => s === 0), 3000, 'both stages to free the cancelled request');
    const [got, ref] = await Promise.all([ask(on, history), ask(off, history)]);
    expect(got.text).toBe(ref.text);
    expect(got.cached).toBeGreaterThan(0);
  });
});
