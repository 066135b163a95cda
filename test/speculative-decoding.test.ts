/**
 * Speculative decoding (prompt lookup) on stories260K through real processes: `edge-node run` on one device and a
 * 3-node ring of `edge-node start` (split 2,2,1). The text is the same bits with speculation on or off — greedy,
 * seeded sampling and log-probabilities — while drafts are accepted and walks saved (usage, /metrics, /v1/cluster);
 * speculating and plain requests batched side by side each give their own text; a request cancelled mid-speculation
 * leaves no KV cache behind; a stage lost mid-speculation is replayed with the same text; a `prediction` is drafted
 * from, and bad speculation fields get a 400. A draft model given as a Hugging Face repo id is fetched as --model is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { metric } from './support/api-cluster.js';
import { streamCompletion } from './support/chaos-scenario.js';
import { runSingleDevice, STORIES_GGUF } from './support/single-device-run.js';
import { LocalHubServer } from './support/local-hub-server.js';
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

/** A text the answer keeps quoting (stories260K also repeats itself greedily, which prompt lookup drafts from). */
const QUOTING = 'Tom had a big red ball. Tom liked to play with the ball in the park. One day, Tom';
const PLAIN = 'The sun was hot and the birds';

interface Usage {
  completion_tokens: number;
  completion_tokens_details?: { accepted_prediction_tokens: number; rejected_prediction_tokens: number };
  speculation?: { drafted_tokens: number; accepted_tokens: number; decode_walks: number; tokens_per_walk: number };
}
interface Completion {
  choices: { text: string; logprobs: { token_logprobs: number[] } | null }[];
  usage: Usage;
}

describe('speculative decoding on one device (edge-node run)', () => {
  it('gives the same greedy tokens with and without speculation, in fewer passes', async () => {
    const [off, on] = await Promise.all([runSingleDevice(STORIES_GGUF, QUOTING, 96, ['--speculate', 'off']), runSingleDevice(STORIES_GGUF, QUOTING, 96, ['--speculate', 'on'])]);
    expect(on.tokens).toEqual(off.tokens);
    expect(on.text).toBe(off.text);
    const s = (on as unknown as { speculation: { drafted: number; accepted: number; walks: number; tokens: number } }).speculation;
    expect((off as unknown as { speculation?: unknown }).speculation).toBeUndefined();
    console.log(`run: ${s.accepted} of ${s.drafted} drafted tokens accepted, ${s.walks} passes for ${s.tokens} tokens`);
    expect(s.accepted).toBeGreaterThan(0);
    expect(s.walks).toBeLessThan(on.tokens.length - 1);
  }, 120_000);
});

describe('a draft model (--draft-model): stories260K drafting for itself', () => {
  const h = new ClusterHarness('speculative-draft-model');
  afterAll(() => h.cleanup());

  it('edge-node run and a node started with it: the same greedy text, every draft accepted', async () => {
    const off = await runSingleDevice(STORIES_GGUF, PLAIN, 64, ['--speculate', 'off']);
    const run = await runSingleDevice(STORIES_GGUF, PLAIN, 64, ['--draft-model', STORIES_GGUF]);
    expect(run.tokens).toEqual(off.tokens);
    const s = (run as unknown as { speculation: { drafted: number; accepted: number; draftLength: number } }).speculation;
    expect(s.accepted).toBe(s.drafted);
    // A draft model as large as the served one costs about a walk per drafted token on one device: the tuner, which
    // counts the draft's measured time, drafts on its first pass and its probes, not at every step.
    expect(s.drafted).toBeGreaterThan(0);
    expect(s.draftLength).toBeLessThanOrEqual(16);
    const node = await h.startNode({ name: 'd', args: ['--model', STORIES_GGUF, '--no-mdns', '--draft-model', STORIES_GGUF] });
    expect(node.output()).toMatch(/draft model: stories260K/);
    const r = (await node.complete({ prompt: PLAIN, max_tokens: 64, temperature: 0, speculate: true })) as unknown as Completion;
    expect(r.choices[0].text).toBe(off.text);
    expect(r.usage.speculation!.accepted_tokens).toBe(r.usage.speculation!.drafted_tokens);
    // Drafting with a model as large as the served one costs about a walk per token here: the tuner drafts seldom.
    expect(r.usage.speculation!.drafted_tokens).toBeGreaterThan(0);
    expect(r.usage.speculation!.tokens_per_walk).toBeGreaterThan(1);
  }, 120_000);
});

describe('a draft model named by a Hugging Face repo id (--draft-model owner/name/file)', () => {
  const h = new ClusterHarness('speculative-draft-hub');
  const REPO = 'ggml-org/stories260k-gguf';
  let hub: LocalHubServer;
  beforeAll(async () => {
    hub = await new LocalHubServer([{ repo: REPO, dir: dirname(STORIES_GGUF), files: ['stories260K.gguf'] }]).start();
  });
  afterAll(async () => {
    await h.cleanup();
    await hub?.close();
  });

  it('is fetched into the cache as --model is, and drafts: the same greedy text, every draft accepted; offline and not cached, a clear error', async () => {
    const off = await runSingleDevice(STORIES_GGUF, PLAIN, 48, ['--speculate', 'off']);
    const node = await h.startNode({ name: 'hub-draft', args: ['--model', STORIES_GGUF, '--no-mdns', '--draft-model', `${REPO}/stories260K.gguf`, '--hub-endpoint', hub.url], timeoutMs: 60_000 });
    expect(node.output()).toMatch(/model ggml-org\/stories260k-gguf\/stories260K\.gguf: downloaded/);
    expect(node.output()).toMatch(/draft model: /);
    const r = (await node.complete({ prompt: PLAIN, max_tokens: 48, temperature: 0, speculate: true })) as unknown as Completion;
    expect(r.choices[0].text).toBe(off.text);
    expect(r.usage.speculation!.drafted_tokens).toBeGreaterThan(0);
    expect(r.usage.speculation!.accepted_tokens).toBe(r.usage.speculation!.drafted_tokens);

    // `edge-node run`, offline with nothing cached: the draft model's error, saying what to do.
    const run = promisify(execFile);
    const failed = (await run(process.execPath, [CLI_BIN, 'run', '--model', STORIES_GGUF, '--prompt', PLAIN, '--max-tokens', '4', '--data-dir', h.dataDirFor('offline-run'), '--draft-model', `${REPO}/stories260K.gguf`], { env: { ...process.env, HF_HUB_OFFLINE: '1' } }).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/--draft-model ggml-org\/stories260k-gguf\/stories260K\.gguf: .*not in the cache .* downloads are off \(HF_HUB_OFFLINE\): download it once with network access/);
    // `edge-node start` likewise; a value that is neither a path nor a repo id is a usage error at once.
    const offline = h.spawnNode({ name: 'offline-start', args: ['--model', STORIES_GGUF, '--no-mdns', '--draft-model', `${REPO}/stories260K.gguf`], env: { HF_HUB_OFFLINE: '1' } });
    expect((await offline.exited).code).not.toBe(0);
    expect(offline.output()).toMatch(/--draft-model ggml-org\/stories260k-gguf\/stories260K\.gguf: .*not in the cache .* downloads are off \(HF_HUB_OFFLINE\)/);
    const typo = h.spawnNode({ name: 'typo', args: ['--model', STORIES_GGUF, '--no-mdns', '--draft-model', './no-such-draft.gguf'] });
    expect((await typo.exited).code).not.toBe(0);
    expect(typo.output()).toMatch(/--draft-model \.\/no-such-draft\.gguf: .* does not exist, and it is not a Hugging Face repo id/);
  }, 120_000);
});

describe('speculative decoding through a 3-node pipeline', () => {
  const h = new ClusterHarness('speculative-decoding');
  let a: RunningNode;
  let b: RunningNode;
  let c: RunningNode;
  let model = '';
  afterAll(() => h.cleanup());

  beforeAll(async () => {
    const args = ['--model', STORIES_GGUF, '--no-mdns', '--split', '2,2,1'];
    a = await h.startNode({ name: 'a', args });
    [b, c] = await Promise.all([h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] }), h.startNode({ name: 'c', args: [...args, '--bootstrap', a.addresses[0]] })]);
    await h.waitForPipelineMembers([a, b, c]);
    model = await a.modelId();
  }, 120_000);

  const complete = async (body: Record<string, unknown>) => (await a.complete({ model, ...body })) as unknown as Completion;

  it('greedy: the same text as one device without speculation, with drafts accepted; usage and metrics count them', async () => {
    const alone = await runSingleDevice(STORIES_GGUF, QUOTING, 96, ['--speculate', 'off']);
    const off = await complete({ prompt: QUOTING, max_tokens: 96, temperature: 0, speculate: false });
    const latencyBefore = await metric(a, 'edge_node_token_latency_seconds_count');
    const on = await complete({ prompt: QUOTING, max_tokens: 96, temperature: 0, speculate: true });
    // Per-token latency counts every token after the first, whichever walk returned it.
    expect((await metric(a, 'edge_node_token_latency_seconds_count')) - latencyBefore).toBe(on.usage.completion_tokens - 1);
    expect(off.choices[0].text).toBe(alone.text);
    expect(on.choices[0].text).toBe(alone.text);
    expect(off.usage.speculation).toBeUndefined();
    const s = on.usage.speculation!;
    console.log(`3 nodes: ${s.accepted_tokens} of ${s.drafted_tokens} drafted tokens accepted, ${s.decode_walks} walks, ${s.tokens_per_walk.toFixed(2)} tokens per walk`);
    expect(s.accepted_tokens).toBeGreaterThan(0);
    expect(s.tokens_per_walk).toBeGreaterThan(1);
    expect(on.usage.completion_tokens_details).toEqual({ accepted_prediction_tokens: s.accepted_tokens, rejected_prediction_tokens: s.drafted_tokens - s.accepted_tokens });
    expect(await metric(a, 'edge_node_speculation_accepted_tokens_total')).toBeGreaterThanOrEqual(s.accepted_tokens);
    expect(await metric(a, 'edge_node_speculation_drafted_tokens_total')).toBeGreaterThanOrEqual(s.drafted_tokens);
    const cluster = (await a.cluster()) as { serving: { speculation: { enabled: boolean; accepted: number; tokensPerWalk: number } | null } };
    expect(cluster.serving.speculation?.enabled).toBe(true);
    expect(cluster.serving.speculation!.accepted).toBeGreaterThanOrEqual(s.accepted_tokens);
  }, 120_000);

  it('seeded sampling and log-probabilities: the same bits with speculation on and off', async () => {
    const body = { prompt: QUOTING, max_tokens: 64, temperature: 0.8, top_k: 40, seed: 11, logprobs: 2, repetition_penalty: 1.1 };
    const [off, on] = await Promise.all([complete({ ...body, speculate: false }), complete({ ...body, speculate: true })]);
    expect(on.choices[0].text).toBe(off.choices[0].text);
    expect(on.choices[0].logprobs!.token_logprobs).toEqual(off.choices[0].logprobs!.token_logprobs);
    expect(on.usage.speculation!.drafted_tokens).toBeGreaterThan(0);
  }, 120_000);

  it('a prediction (text or text parts) drafts the expected answer; bad speculation fields are refused with a 400', async () => {
    const ref = await complete({ prompt: PLAIN, max_tokens: 48, temperature: 0, speculate: false });
    const text = await complete({ prompt: PLAIN, max_tokens: 48, temperature: 0, prediction: { type: 'content', content: ref.choices[0].text } });
    expect(text.choices[0].text).toBe(ref.choices[0].text);
    expect(text.usage.speculation!.accepted_tokens).toBeGreaterThan(0);
    const chat = await h.postJson(`${a.apiUrl}/v1/chat/completions`, { model, messages: [{ role: 'user', content: PLAIN }], max_tokens: 24, temperature: 0, prediction: { type: 'content', content: [{ type: 'text', text: 'The sun' }] } });
    expect(chat.status).toBe(200);
    for (const [field, value] of [['speculate', 'yes'], ['prediction', { type: 'content', content: 5 }], ['prediction', { type: 'other', content: 'x' }], ['prediction', { type: 'content', content: [1e9] }]] as const) {
      const res = await h.postJson(`${a.apiUrl}/v1/completions`, { model, prompt: PLAIN, max_tokens: 4, [field]: value });
      expect(res.status, `${field}: ${JSON.stringify(value)}`).toBe(400);
      expect(JSON.stringify(res.json)).toMatch(/speculate|prediction/);
    }
  }, 120_000);

  it('a whole answer as its prediction: verifications of 12 rows and more go through the ring in parts, the same text', async () => {
    const ref = await complete({ prompt: QUOTING, max_tokens: 96, temperature: 0, speculate: false });
    const tokens = ref.choices[0].text;
    const on = await complete({ prompt: QUOTING, max_tokens: 96, temperature: 0, prediction: { type: 'content', content: tokens } });
    expect(on.choices[0].text).toBe(tokens);
    expect(on.usage.speculation!.accepted_tokens).toBeGreaterThan(48);
    // 2 × MIN_VERIFICATION_PART_ROWS rows or more go in two parts on three stages (verification-parts.ts).
    const cluster = (await a.cluster()) as { serving: { speculation: { passMs: Record<string, number> } } };
    const sizes = Object.keys(cluster.serving.speculation.passMs).map(Number);
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(12);
  }, 120_000);

  it('speculating and plain requests batched side by side each give their own text', async () => {
    const prompts = [QUOTING, PLAIN, 'Lily wanted to', 'Once upon a time'];
    const refs = await Promise.all(prompts.map((prompt) => complete({ prompt, max_tokens: 48, temperature: 0, speculate: false })));
    // Lookup drafts for the first; the third's answer as its prediction, whose long verifications go in parts.
    const prediction = { type: 'content', content: refs[2].choices[0].text };
    const together = await Promise.all(prompts.map((prompt, i) => complete({ prompt, max_tokens: 48, temperature: 0, speculate: i % 2 === 0, ...(i === 2 ? { prediction } : {}) })));
    together.forEach((r, i) => expect(r.choices[0].text, prompts[i]).toBe(refs[i].choices[0].text));
    expect(together[0].usage.speculation!.drafted_tokens).toBeGreaterThan(0);
    expect(together[2].usage.speculation!.accepted_tokens).toBeGreaterThan(24);
    expect(together[1].usage.speculation).toBeUndefined();
  }, 120_000);

  it('a request cancelled mid-speculation leaves no KV cache on any stage, and the next one is right', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${a.apiUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: QUOTING, max_tokens: 400, temperature: 0, ignore_eos: true, stream: true, speculate: true }),
      signal: ctrl.signal,
    });
    const reader = res.body!.getReader();
    let seen = 0;
    while (seen < 6) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += (new TextDecoder().decode(value).match(/^data: /gm) ?? []).length;
    }
    ctrl.abort();
    await h.waitFor(async () => (await Promise.all([a, b, c].map((n) => metric(n, 'edge_node_kv_sessions')))).every((v) => v === 0), 10_000, 'every stage to free the cancelled request');
    const alone = await runSingleDevice(STORIES_GGUF, PLAIN, 32, ['--speculate', 'off']);
    expect((await complete({ prompt: PLAIN, max_tokens: 32, temperature: 0 })).choices[0].text).toBe(alone.text);
  }, 120_000);

  it('a stage lost mid-speculation, its verifications in parts: the replay gives the same text', async () => {
    const body = { model, prompt: QUOTING, max_tokens: 200, temperature: 0, ignore_eos: true, speculate: true };
    const reference = await complete({ ...body, speculate: false });
    // The answer as its prediction: long drafts, so the verifications under way go through the ring in parts.
    const prediction = { type: 'content', content: reference.choices[0].text };
    const r = await streamCompletion(a.apiUrl, { ...body, prediction }, 60_000, (n) => {
      if (n === 5) c.kill('SIGKILL');
    });
    expect(r.error).toBeNull();
    expect(r.text).toBe(reference.choices[0].text);
    expect(await metric(a, 'edge_node_recoveries_total{outcome="recovered"}')).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
