/**
 * The Ollama API of a live 2-node cluster (two `edge-node start` processes on loopback, stories260K split [0,2) +
 * [2,5)), driven by the official `ollama` npm client: chat and generate (JSON and NDJSON streams, measured timing
 * fields), options, `format` "json" and a JSON schema, tools (a forced call under its schema, a round trip), the
 * model routes (tags, show, ps, version) against the model file itself, and embed.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Ajv } from 'ajv';
import { Ollama, type ChatRequest, type Message, type Tool } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../packages/node/src/model/open-model.js';
import type { ModelConfig } from '../packages/node/src/model/model-config.js';
import { renderFallbackChat } from '../packages/node/src/tokenizer/chat-template.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../packages/node/src/tokenizer/tokenizer.js';
import { ClusterHarness } from './support/cluster-harness.js';
import { metric, startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const MESSAGES: Message[] = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me about a dog.' },
];
/** Plain argmax: temperature 0 without Ollama's default repeat penalty. */
const GREEDY = { temperature: 0, repeat_penalty: 1 };

/** Ollama's `Tool` type lists a few JSON Schema keywords only; the server takes any (and the grammar keeps to maxLength). */
const CITY = { type: 'string', maxLength: 24 };
const WEATHER: Tool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: CITY, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
  },
};

/** The ResponseError the client throws (fails the test if the call succeeds). */
async function ollamaError(call: () => Promise<unknown>): Promise<{ status_code: number; error: string }> {
  try {
    await call();
  } catch (err) {
    const e = err as { name?: string; status_code?: number; error?: string };
    if (e.name === 'ResponseError' && typeof e.status_code === 'number' && typeof e.error === 'string') return { status_code: e.status_code, error: e.error };
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('Ollama client against a 2-node cluster', () => {
  const h = new ClusterHarness('api-ollama');
  let c: ApiCluster;
  let ollama: Ollama;
  let tokenizer: Tokenizer;
  let config: ModelConfig;
  let parameters = 0;
  const ajv = new Ajv({ strict: false });
  beforeAll(async () => {
    const model = await openModel(STORIES_GGUF);
    tokenizer = await loadTokenizer(model.tokenizer);
    config = model.config;
    for (const t of model.tensors.values()) parameters += t.shape.reduce((a, b) => a * b, 1);
    await model.close();
    c = await startApiCluster(h);
    ollama = new Ollama({ host: c.a.apiUrl });
  }, 60_000);
  afterAll(() => h.cleanup());

  it('version, tags, show and ps describe the served model file', async () => {
    expect((await ollama.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
    const { models } = await ollama.list();
    expect(models).toHaveLength(1);
    const m = models[0];
    expect(m.name).toBe('stories260K:latest');
    expect(m.size).toBe(statSync(STORIES_GGUF).size);
    expect(m.digest).toBe(createHash('sha256').update(readFileSync(STORIES_GGUF)).digest('hex'));
    expect(m.details.format).toBe('gguf');
    expect(m.details.family).toBe('llama');
    expect(m.details.parameter_size).toMatch(/^\d+(\.\d)?[KMB]$/);
    expect(m.details.quantization_level).toMatch(/^[A-Z0-9_]+$/);

    const show = await ollama.show({ model: 'stories260K' });
    expect(show.capabilities).toEqual(expect.arrayContaining(['completion', 'tools', 'embedding']));
    const info = show.model_info as unknown as Record<string, unknown>;
    expect(info['general.architecture']).toBe('llama');
    expect(info['general.parameter_count']).toBe(parameters);
    expect(info['llama.block_count']).toBe(config.numLayers);
    expect(info['llama.embedding_length']).toBe(config.hiddenSize);
    expect(info['llama.attention.head_count']).toBe(config.numHeads);
    expect(show.template).toBe(''); // this model has no chat template
    expect(show.details.parameter_size).toBe(m.details.parameter_size);

    const ps = await ollama.ps();
    expect(ps.models.map((x) => x.name)).toEqual(['stories260K:latest']);
    expect(ps.models[0].size).toBe(m.size);
    expect(new Date(ps.models[0].expires_at).getTime()).toBeGreaterThan(Date.now());
  });

  let greedy: Awaited<ReturnType<Ollama['chat']>>;
  it('chat, not streamed: greedy text, counts and measured durations in nanoseconds', async () => {
    const t0 = performance.now();
    greedy = await ollama.chat({ model: 'stories260K', messages: MESSAGES, stream: false, options: { ...GREEDY, num_predict: 30 } });
    const wallNs = (performance.now() - t0) * 1e6;
    expect(greedy.message.role).toBe('assistant');
    expect(greedy.message.content.length).toBeGreaterThan(10);
    expect(greedy.done).toBe(true);
    expect(greedy.done_reason).toBe('length');
    expect(greedy.eval_count).toBe(30);
    expect(greedy.prompt_eval_count).toBe(tokenizer.encode(renderFallbackChat(MESSAGES.map((m) => ({ role: m.role as 'system' | 'user', content: m.content })))).length);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'] as const) {
      expect(Number.isInteger(greedy[k]), k).toBe(true);
      expect(greedy[k], k).toBeGreaterThanOrEqual(0);
    }
    expect(greedy.prompt_eval_duration).toBeGreaterThan(0);
    expect(greedy.eval_duration).toBeGreaterThan(0);
    expect(greedy.total_duration).toBeGreaterThanOrEqual(greedy.prompt_eval_duration + greedy.eval_duration);
    expect(greedy.total_duration).toBeLessThanOrEqual(wallNs);
    // The same greedy text as the OpenAI dialect gives for the conversation.
    const openai = new OpenAI({ baseURL: `${c.b.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const o = await openai.chat.completions.create({ model: c.modelId, messages: MESSAGES as OpenAI.Chat.ChatCompletionMessageParam[], max_tokens: 30, temperature: 0 });
    expect(greedy.message.content).toBe(o.choices[0].message.content);
  });

  it('chat, streamed NDJSON: the pieces make the same text; the last line is done with the counts', async () => {
    const stream = await ollama.chat({ model: 'stories260K:latest', messages: MESSAGES, stream: true, options: { ...GREEDY, num_predict: 30 } });
    const parts: string[] = [];
    let last: (typeof greedy) | null = null;
    for await (const part of stream) {
      if (!part.done) {
        expect(part.message.role).toBe('assistant');
        parts.push(part.message.content);
      } else last = part as typeof greedy;
    }
    expect(parts.length).toBeGreaterThan(3);
    expect(parts.join('')).toBe(greedy.message.content);
    expect(last!.done_reason).toBe('length');
    expect(last!.eval_count).toBe(30);
    expect(last!.prompt_eval_count).toBe(greedy.prompt_eval_count);
  });

  it('options: stop cuts the text, seed reproduces a sampled answer, repeat_penalty changes greedy text', async () => {
    const words = greedy.message.content.trim().split(/\s+/);
    const stop = ` ${words[2]}`;
    const cut = await ollama.chat({ model: 'stories260K', messages: MESSAGES, options: { ...GREEDY, num_predict: 30, stop: [stop] } });
    expect(cut.message.content).toBe(greedy.message.content.slice(0, greedy.message.content.indexOf(stop)));
    expect(cut.done_reason).toBe('stop');
    const sampled = () => ollama.chat({ model: 'stories260K', messages: MESSAGES, options: { temperature: 1, top_k: 40, top_p: 0.95, min_p: 0.05, seed: 7, num_predict: 24 } });
    const [s1, s2] = [await sampled(), await sampled()];
    expect(s1.message.content).toBe(s2.message.content);
    const penalised = await ollama.chat({ model: 'stories260K', messages: MESSAGES, options: { temperature: 0, repeat_penalty: 1.5, num_predict: 30 } });
    expect(penalised.message.content).not.toBe(greedy.message.content);
    // num_ctx below the model's bounds prompt + answer.
    const small = await ollama.chat({ model: 'stories260K', messages: MESSAGES, options: { ...GREEDY, num_ctx: greedy.prompt_eval_count + 5 } });
    expect(small.eval_count).toBe(5);
    expect(small.done_reason).toBe('length');
  });

  it('generate: the prompt as the user turn, or raw; streamed; its context continues the text', async () => {
    const raw = await ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true, options: { ...GREEDY, num_predict: 20 } });
    const openai = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const completion = await openai.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
    expect(raw.response).toBe(completion.choices[0].text);
    expect(raw.eval_count).toBe(20);
    expect(raw.context).toHaveLength(raw.prompt_eval_count + raw.eval_count);

    const templated = await ollama.generate({ model: 'stories260K', prompt: 'Tell me about a dog.', system: 'You tell short stories.', options: { ...GREEDY, num_predict: 30 } });
    expect(templated.response).toBe(greedy.message.content);

    const stream = await ollama.generate({ model: 'stories260K', prompt: 'Once upon a time', raw: true, stream: true, options: { ...GREEDY, num_predict: 20 } });
    let text = '';
    let done = false;
    for await (const part of stream) {
      text += part.response;
      done ||= part.done;
    }
    expect(done).toBe(true);
    expect(text).toBe(raw.response);

    // Continuing from the returned context is the same as a raw prompt of everything so far.
    const more = await ollama.generate({ model: 'stories260K', prompt: ' The', raw: true, context: raw.context, options: { ...GREEDY, num_predict: 10 } });
    const whole = await openai.completions.create({ model: c.modelId, prompt: [...raw.context!, ...tokenizer.encode(' The', { addBos: false })], max_tokens: 10, temperature: 0 });
    expect(more.response).toBe(whole.choices[0].text);
  });

  it('format "json" and a JSON schema: the answers parse and validate, at temperature 1', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 20 }, age: { type: 'integer', minimum: 0, maximum: 120 }, pets: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 3 } }, required: ['name', 'age'] };
    const validate = ajv.compile(schema);
    for (let i = 0; i < 5; i++) {
      const r = await ollama.chat({ model: 'stories260K', messages: [{ role: 'user', content: 'Describe a person.' }], format: schema, options: { temperature: 1, num_predict: 120 } });
      const value: unknown = JSON.parse(r.message.content);
      expect(validate(value), r.message.content).toBe(true);
    }
    const json = await ollama.generate({ model: 'stories260K', prompt: 'A dog', format: 'json', options: { temperature: 1, num_predict: 60 } });
    const parsed: unknown = JSON.parse(json.response ?? '');
    expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
    // Streamed, the pieces make a valid answer too.
    let streamed = '';
    for await (const part of await ollama.chat({ model: 'stories260K', messages: [{ role: 'user', content: 'Describe a person.' }], format: schema, stream: true, options: { temperature: 1, num_predict: 120 } })) streamed += part.message.content;
    expect(validate(JSON.parse(streamed))).toBe(true);
  });

  it('tools: a forced call (tool_choice extension) has arguments valid under the schema, streamed too; the result goes back into the prompt', async () => {
    const validate = ajv.compile(WEATHER.function.parameters!);
    const ask: Message = { role: 'user', content: 'What is the weather in Paris?' };
    // Ollama has no tool_choice; this node takes OpenAI's as an extension, so the constrained sampler writes the call.
    const forced = { model: 'stories260K', messages: [ask], tools: [WEATHER], tool_choice: 'required', options: { temperature: 1, num_predict: 100 } } as ChatRequest;
    for (let i = 0; i < 5; i++) {
      const r = await ollama.chat({ ...forced, stream: false });
      expect(r.message.tool_calls).toHaveLength(1);
      const call = r.message.tool_calls![0];
      expect(call.function.name).toBe('get_weather');
      expect(validate(call.function.arguments), JSON.stringify(call.function.arguments)).toBe(true);
      expect(r.message.content).toBe('');
    }
    let calls: NonNullable<Message['tool_calls']> = [];
    for await (const part of await ollama.chat({ ...forced, stream: true })) if (part.message.tool_calls) calls = [...calls, ...part.message.tool_calls];
    expect(calls).toHaveLength(1);
    expect(validate(calls[0].function.arguments)).toBe(true);

    // Without forcing, tools are offered in the prompt (the fallback description): more prompt tokens.
    const plain = await ollama.chat({ model: 'stories260K', messages: [ask], options: { ...GREEDY, num_predict: 3 } });
    const offered = await ollama.chat({ model: 'stories260K', messages: [ask], tools: [WEATHER], options: { ...GREEDY, num_predict: 3 } });
    expect(offered.prompt_eval_count).toBeGreaterThan(plain.prompt_eval_count);

    // A round trip: the call and the tool's answer come back; a longer answer is a longer prompt.
    const roundTrip = (result: string) =>
      ollama.chat({ model: 'stories260K', messages: [ask, { role: 'assistant', content: '', tool_calls: calls }, { role: 'tool', content: result, tool_name: 'get_weather' } as Message], tools: [WEATHER], options: { ...GREEDY, num_predict: 10 } });
    const short = await roundTrip('21 degrees');
    const long = await roundTrip('21 degrees, sunny, light wind from the west');
    expect(short.message.content.length).toBeGreaterThan(0);
    expect(long.prompt_eval_count).toBeGreaterThan(short.prompt_eval_count);
  });

  it('embed: one unit-length vector of the hidden size per input, the same alone or batched', async () => {
    const r = await ollama.embed({ model: 'stories260K', input: ['A dog ran in the park.', 'The cat slept.'] });
    expect(r.embeddings).toHaveLength(2);
    for (const v of r.embeddings) {
      expect(v).toHaveLength(config.hiddenSize);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect(r.embeddings[0]).not.toEqual(r.embeddings[1]);
    const alone = await ollama.embed({ model: 'stories260K', input: 'The cat slept.' });
    expect(alone.embeddings[0]).toEqual(r.embeddings[1]);
    expect(r.prompt_eval_count).toBe(tokenizer.encode('A dog ran in the park.').length + tokenizer.encode('The cat slept.').length);
    expect(r.total_duration).toBeGreaterThan(0);
  });

  it('errors as Ollama gives them through the client: unknown model, num_ctx too large, bad option, think', async () => {
    const unknown = await ollamaError(() => ollama.chat({ model: 'llama3.2', messages: MESSAGES }));
    expect(unknown.status_code).toBe(404);
    expect(unknown.error).toContain('llama3.2');
    expect(unknown.error).toContain('not found');
    const ctx = await ollamaError(() => ollama.chat({ model: 'stories260K', messages: MESSAGES, options: { num_ctx: 1_000_000 } }));
    expect(ctx.status_code).toBe(400);
    expect(ctx.error).toContain('num_ctx');
    const bad = await ollamaError(() => ollama.generate({ model: 'stories260K', prompt: 'x', options: { temperature: 'hot' as unknown as number } }));
    expect(bad.status_code).toBe(400);
    expect(bad.error).toContain('options.temperature');
    const think = await ollamaError(() => ollama.chat({ model: 'stories260K', messages: MESSAGES, think: true }));
    expect(think.status_code).toBe(400);
  });

  it('metrics and /v1/cluster count the Ollama generations and embeddings', async () => {
    expect(await metric(c.a, 'edge_node_generations_total{endpoint="ollama_chat",finish="length"}')).toBeGreaterThanOrEqual(10);
    expect(await metric(c.a, 'edge_node_generations_total{endpoint="ollama_generate",finish="length"}')).toBeGreaterThanOrEqual(4);
    expect(await metric(c.a, 'edge_node_generations_total{endpoint="embeddings",finish="stop"}')).toBeGreaterThanOrEqual(2);
    expect(await metric(c.a, 'edge_node_http_requests_total{route="/api/chat",status="200"}')).toBeGreaterThanOrEqual(10);
    // The web page's figures come from /v1/cluster's serving block: every dialect's requests and tokens count there.
    const cluster = (await (await fetch(`${c.a.apiUrl}/v1/cluster`)).json()) as { serving: { requestsTotal: number; completionTokensTotal: number } };
    expect(cluster.serving.requestsTotal).toBeGreaterThanOrEqual(16);
    expect(cluster.serving.completionTokensTotal).toBeGreaterThanOrEqual(30 * 3);
  });
});
