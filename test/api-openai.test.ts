/**
 * The OpenAI-compatible API of a live 2-node cluster (two `edge-node start` processes on loopback, stories260K split
 * [0,2) + [2,5)), driven by the official `openai` npm client: chat and completions, JSON and streamed, models; the
 * ChatML template path on a model folder with a chat template; and `edge-node chat` in the terminal.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../packages/node/src/model/open-model.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import { renderChat, renderFallbackChat, type ChatMessage } from '../packages/node/src/tokenizer/chat-template.js';
import type { Tokenizer } from '../packages/node/src/tokenizer/tokenizer.js';
import { CLI_BIN, ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { SHARED_MODELS, STORIES_GGUF } from './support/single-device-run.js';

const MESSAGES = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me about a dog.' },
] satisfies ChatMessage[];

describe('OpenAI client against a 2-node cluster', () => {
  const h = new ClusterHarness('api-openai');
  let c: ApiCluster;
  let client: OpenAI;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    const model = await openModel(STORIES_GGUF);
    tokenizer = await loadTokenizer(model.tokenizer);
    await model.close();
    c = await startApiCluster(h);
    client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  }, 60_000);
  afterAll(() => h.cleanup());

  it('lists and retrieves the model by its file name', async () => {
    expect(c.modelId).toBe('stories260K');
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['stories260K']);
    expect(list.data[0].object).toBe('model');
    const one = await client.models.retrieve('stories260K');
    expect(one.id).toBe('stories260K');
    expect((one as unknown as { context_length: number }).context_length).toBeGreaterThan(0);
  });

  let greedy: OpenAI.Chat.Completions.ChatCompletion;
  it('chat, non-streaming: the fallback transcript, greedy, with usage', async () => {
    greedy = await client.chat.completions.create({ model: c.modelId, messages: MESSAGES, max_tokens: 30, temperature: 0 });
    expect(greedy.object).toBe('chat.completion');
    expect(greedy.id).toMatch(/^chatcmpl-/);
    expect(greedy.model).toBe('stories260K');
    expect(Math.abs(greedy.created - Date.now() / 1000)).toBeLessThan(60);
    const msg = greedy.choices[0].message;
    expect(msg.role).toBe('assistant');
    expect(msg.content!.length).toBeGreaterThan(10);
    // The model has no chat template: the prompt is the plain transcript, tokenized with the model's BOS.
    const rendered = renderFallbackChat(MESSAGES);
    const promptTokens = tokenizer.encode(rendered).length;
    expect(greedy.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: expect.any(Number), total_tokens: promptTokens + greedy.usage!.completion_tokens, prompt_tokens_details: { cached_tokens: expect.any(Number) } });
    // The same text as a raw completion of that transcript (which stops where the user's next turn would start).
    const raw = await client.completions.create({ model: c.modelId, prompt: rendered, max_tokens: 30, temperature: 0, stop: ['\nUser:'] });
    expect(msg.content).toBe(raw.choices[0].text);
    expect(greedy.choices[0].finish_reason).toBe(raw.choices[0].finish_reason);
    expect(greedy.usage!.completion_tokens).toBe(raw.usage!.completion_tokens);
    if (greedy.choices[0].finish_reason === 'length') expect(greedy.usage!.completion_tokens).toBe(30);
  });

  it('chat, streaming: role first, content in several chunks, finish_reason, usage, the same text', async () => {
    const stream = await client.chat.completions.create({
      model: c.modelId,
      messages: MESSAGES,
      max_tokens: 30,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const contentChunks = chunks.filter((ch) => ch.choices[0]?.delta.content);
    expect(contentChunks.length).toBeGreaterThan(5);
    expect(contentChunks.map((ch) => ch.choices[0].delta.content).join('')).toBe(greedy.choices[0].message.content);
    const finish = chunks.filter((ch) => ch.choices[0]?.finish_reason);
    expect(finish.map((ch) => ch.choices[0].finish_reason)).toEqual([greedy.choices[0].finish_reason]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    // The same prompt again: its blocks may now come from the prefix cache, the counts are the same.
    expect({ ...last.usage, prompt_tokens_details: undefined }).toEqual({ ...greedy.usage, prompt_tokens_details: undefined });
    expect(new Set(chunks.map((ch) => ch.id)).size).toBe(1);
    expect(chunks.every((ch) => ch.object === 'chat.completion.chunk' && ch.model === 'stories260K')).toBe(true);
  });

  it('the stream ends with data: [DONE] (raw SSE)', async () => {
    const res = await fetch(`${c.a.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: c.modelId, messages: MESSAGES, max_tokens: 8, temperature: 0, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const events = text.split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
    // Without include_usage there is no usage chunk.
    expect(events.slice(0, -1).some((e) => JSON.parse(e.slice(6)).usage)).toBe(false);
  });

  it('any node serves: the same greedy answer through node b, content given as text parts', async () => {
    const viaB = new OpenAI({ baseURL: `${c.b.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const res = await viaB.chat.completions.create({
      model: c.modelId,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'You tell short ' }, { type: 'text', text: 'stories.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Tell me about a dog.' }] },
      ],
      max_completion_tokens: 30,
      temperature: 0,
    });
    expect(res.choices[0].message.content).toBe(greedy.choices[0].message.content);
    expect({ ...res.usage, prompt_tokens_details: undefined }).toEqual({ ...greedy.usage, prompt_tokens_details: undefined });
  });

  it('completions, non-streaming and streaming (choices[0].text chunks), with stop strings', async () => {
    const full = await client.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
    expect(full.object).toBe('text_completion');
    expect(full.choices[0].text).toMatch(/^, there was a little girl named Lily/);
    expect(full.choices[0].finish_reason).toBe('length');
    expect(full.usage).toEqual({ prompt_tokens: 5, completion_tokens: 40, total_tokens: 45, prompt_tokens_details: { cached_tokens: 0 } });

    const stream = await client.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const parts: string[] = [];
    let finish: string | null = null;
    let usage: OpenAI.Completions.CompletionUsage | undefined;
    for await (const ch of stream) {
      if (ch.choices[0]?.text) parts.push(ch.choices[0].text);
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
      if (ch.usage) usage = ch.usage;
    }
    expect(parts.length).toBeGreaterThan(10);
    expect(parts.join('')).toBe(full.choices[0].text);
    expect(finish).toBe('length');
    expect(usage).toEqual(full.usage);

    const stopped = await client.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: 'Lily' });
    expect(stopped.choices[0].text).toBe(', there was a little girl named ');
    expect(stopped.choices[0].finish_reason).toBe('stop');
  });

  it('sampling: the same seed gives the same text, penalties change greedy output', async () => {
    const body = { model: c.modelId, prompt: 'Once upon a time', max_tokens: 30, temperature: 1, top_p: 0.9, seed: 1234 };
    const [x, y] = await Promise.all([client.completions.create(body), client.completions.create(body)]);
    expect(x.choices[0].text).toBe(y.choices[0].text);
    const others = await Promise.all([1, 2, 3].map((seed) => client.completions.create({ ...body, seed: 1234 + seed })));
    expect(others.some((o) => o.choices[0].text !== x.choices[0].text)).toBe(true);
    const plain = await client.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
    const penalised = await client.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, frequency_penalty: 2, presence_penalty: 2 });
    expect(penalised.choices[0].text).not.toBe(plain.choices[0].text);
  });

  it('edge-node chat streams answers in the terminal', async () => {
    const proc = spawn(process.execPath, [CLI_BIN, 'chat', '--api', c.b.apiUrl, '--max-tokens', '30', '--temperature', '0', '--system', 'You tell short stories.'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    const writes: number[] = [];
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      writes.push(Date.now());
    });
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdin.end('Tell me about a dog.\n');
    const code = await new Promise<number | null>((r) => proc.once('exit', r));
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toBe(`assistant> ${greedy.choices[0].message.content!.trimStart()}\n`);
    expect(writes.length).toBeGreaterThan(5); // token by token, not one block
  });
});

describe('a model folder with a ChatML chat template', () => {
  const h = new ClusterHarness('api-openai-chatml');
  const dir = mkdtempSync(join(tmpdir(), 'edge-chatml-'));
  const modelDir = join(dir, 'stories-chatml');
  let node: RunningNode;
  afterAll(async () => {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('renders messages with the template and generates the same as a completion of the rendered prompt', async () => {
    // Links to the shared files (never copies of weights) plus the SmolLM2 ChatML template.
    mkdirSync(modelDir);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) symlinkSync(join(SHARED_MODELS, 'stories260k-hf', f), join(modelDir, f));
    copyFileSync(join(SHARED_MODELS, 'smollm2-135m-instruct-tokenizer', 'chat_template.jinja'), join(modelDir, 'chat_template.jinja'));
    node = await h.startNode({ name: 'solo', args: ['--model', modelDir, '--no-mdns'] });
    const client = new OpenAI({ baseURL: `${node.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data[0].id).toBe('stories-chatml');

    const model = await openModel(modelDir);
    const tok = await loadTokenizer(model.tokenizer);
    const template = model.chatTemplate!;
    await model.close();
    const rendered = renderChat([{ role: 'user', content: 'Hi' }], { template, bosToken: '<s>', eosToken: '</s>' });
    expect(rendered).toContain('<|im_start|>assistant\n');
    const chat = await client.chat.completions.create({ model: 'stories-chatml', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 12, temperature: 0 });
    expect(chat.usage!.prompt_tokens).toBe(tok.encode(rendered).length);
    const raw = await client.completions.create({ model: 'stories-chatml', prompt: rendered, max_tokens: 12, temperature: 0 });
    expect(chat.choices[0].message.content).toBe(raw.choices[0].text);
  });
});
