/**
 * The Anthropic Messages API of a live 2-node cluster (two `edge-node start` processes on loopback, stories260K split
 * [0,2) + [2,5), an API key the SDK sends as `x-api-key`), driven by the official `@anthropic-ai/sdk` client:
 * messages, the streaming helpers and the raw event sequence, stop reasons, a tool-use round trip whose inputs
 * validate against `input_schema`, count_tokens, errors in Anthropic's shape; and the same greedy text through the
 * OpenAI, Anthropic and Ollama dialects.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ajv } from 'ajv';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../packages/node/src/model/open-model.js';
import { renderFallbackChat } from '../packages/node/src/tokenizer/chat-template.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../packages/node/src/tokenizer/tokenizer.js';
import { ClusterHarness } from './support/cluster-harness.js';
import { metric, startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const KEY = 'sk-ant-test-0123456789';
const SYSTEM = 'You tell short stories.';
const USER = 'Tell me about a dog.';

const WEATHER: Anthropic.Tool = {
  name: 'get_weather',
  description: 'Current weather in a city',
  input_schema: {
    type: 'object',
    properties: {
      city: { type: 'string', maxLength: 24 },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      days: { type: 'integer', minimum: 1, maximum: 7 },
    },
    required: ['city', 'unit'],
    additionalProperties: false,
  },
};
const ADD: Anthropic.Tool = { name: 'add', input_schema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } };

const textOf = (m: Anthropic.Message) => m.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
/** The whole prompt of a usage: Anthropic counts what was read from a cache apart from input_tokens. */
const total = (u: Anthropic.Usage) => u.input_tokens + (u.cache_read_input_tokens ?? 0);

/** The APIError a client call throws (fails the test if it succeeds). */
async function apiError(call: () => Promise<unknown>): Promise<InstanceType<typeof Anthropic.APIError>> {
  try {
    await call();
  } catch (err) {
    if (err instanceof Anthropic.APIError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('Anthropic client against a 2-node cluster', () => {
  const h = new ClusterHarness('api-anthropic');
  let c: ApiCluster;
  let client: Anthropic;
  /**
   * A non-streaming create with sampling fields: Anthropic's SDK (1.17) no longer types `temperature`, `top_k` and
   * `top_p` (its newest models set them themselves), but the Messages API and this server take them, and the SDK
   * sends every field it is given.
   */
  const create = (params: Anthropic.MessageCreateParamsNonStreaming & { temperature?: number; top_k?: number; top_p?: number }) => client.messages.create(params);
  let tokenizer: Tokenizer;
  const ajv = new Ajv({ strict: false });
  beforeAll(async () => {
    const model = await openModel(STORIES_GGUF);
    tokenizer = await loadTokenizer(model.tokenizer);
    await model.close();
    c = await startApiCluster(h, { apiKey: KEY });
    client = new Anthropic({ baseURL: c.a.apiUrl, apiKey: KEY, maxRetries: 0 });
  }, 60_000);
  afterAll(() => h.cleanup());

  let greedy: Anthropic.Message;
  it('messages.create: text, greedy, usage counts the rendered conversation, max_tokens stop reason', async () => {
    greedy = await create({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }], max_tokens: 30, temperature: 0 });
    expect(greedy.type).toBe('message');
    expect(greedy.role).toBe('assistant');
    expect(greedy.id).toMatch(/^msg_/);
    expect(greedy.model).toBe('stories260K');
    expect(greedy.content).toHaveLength(1);
    expect(greedy.content[0].type).toBe('text');
    expect(textOf(greedy).length).toBeGreaterThan(10);
    // The model has no template: the system prompt and the turn are the plain transcript, with the model's BOS.
    const promptTokens = tokenizer.encode(renderFallbackChat([{ role: 'system', content: SYSTEM }, { role: 'user', content: USER }])).length;
    expect(greedy.usage.input_tokens + (greedy.usage.cache_read_input_tokens ?? 0)).toBe(promptTokens);
    expect(greedy.stop_reason === 'max_tokens').toBe(greedy.usage.output_tokens === 30);
    expect(greedy.stop_sequence).toBeNull();
    // System as text blocks is the same request.
    const blocks = await create({ model: c.modelId, system: [{ type: 'text', text: SYSTEM }], messages: [{ role: 'user', content: [{ type: 'text', text: USER }] }], max_tokens: 30, temperature: 0 });
    expect(textOf(blocks)).toBe(textOf(greedy));
    expect(total(blocks.usage)).toBe(total(greedy.usage));
    expect(blocks.usage.output_tokens).toBe(greedy.usage.output_tokens);
  });

  it('the same greedy text through the OpenAI, Anthropic and Ollama dialects', async () => {
    const openai = new OpenAI({ baseURL: `${c.b.apiUrl}/v1`, apiKey: KEY, maxRetries: 0 });
    const o = await openai.chat.completions.create({ model: c.modelId, messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: USER }], max_tokens: 30, temperature: 0 });
    const ollama = new Ollama({ host: c.b.apiUrl, headers: { authorization: `Bearer ${KEY}` } });
    // Ollama's default repeat_penalty is 1.1; 1 is the plain argmax the other two give at temperature 0.
    const l = await ollama.chat({ model: `${c.modelId}:latest`, messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: USER }], options: { temperature: 0, repeat_penalty: 1, num_predict: 30 } });
    expect(o.choices[0].message.content).toBe(textOf(greedy));
    expect(l.message.content).toBe(textOf(greedy));
    expect(l.eval_count).toBe(greedy.usage.output_tokens);
    expect(l.prompt_eval_count).toBe(total(greedy.usage));
  });

  it('stop_sequences: the text ends before the first one, stop_reason "stop_sequence" names it', async () => {
    const words = textOf(greedy).trim().split(/\s+/);
    expect(words.length).toBeGreaterThan(3);
    const stop = ` ${words[2]}`;
    const m = await create({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }], max_tokens: 30, temperature: 0, stop_sequences: ['zzzz-never', stop] });
    expect(m.stop_reason).toBe('stop_sequence');
    expect(m.stop_sequence).toBe(stop);
    expect(textOf(m)).toBe(textOf(greedy).slice(0, textOf(greedy).indexOf(stop)));
  });

  it('top_k 1 at temperature 1 is the greedy answer; top_p and metadata are accepted', async () => {
    const m = await create({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }], max_tokens: 30, temperature: 1, top_k: 1, top_p: 0.9, metadata: { user_id: 'u-1' } });
    expect(textOf(m)).toBe(textOf(greedy));
    // A last assistant turn is continued (prefill): the answer is the greedy text after it.
    const words = textOf(greedy).split(' ');
    const prefix = words.slice(0, 3).join(' ');
    const cont = await create({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }, { role: 'assistant', content: prefix }], max_tokens: 10, temperature: 0 });
    expect(textOf(greedy).startsWith(prefix + textOf(cont))).toBe(true);
  });

  it('streaming helpers: the text events make the final message, which equals the JSON answer; events in Anthropic\'s order', async () => {
    const stream = client.messages.stream({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }], max_tokens: 30, temperature: 0 });
    const pieces: string[] = [];
    const types: string[] = [];
    stream.on('text', (t) => pieces.push(t));
    stream.on('streamEvent', (e) => types.push(e.type));
    const final = await stream.finalMessage();
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe(textOf(greedy));
    expect(final.content).toEqual(greedy.content);
    expect(final.stop_reason).toBe(greedy.stop_reason);
    expect(final.usage.output_tokens).toBe(greedy.usage.output_tokens);
    expect(total(final.usage)).toBe(total(greedy.usage));
    expect(types[0]).toBe('message_start');
    expect(types[1]).toBe('content_block_start');
    expect(types.slice(2, -3).every((t) => t === 'content_block_delta')).toBe(true);
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    // The raw stream also carries the ping after the first block opens (the SDK drops it).
    const raw = await fetch(`${c.a.apiUrl}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: c.modelId, messages: [{ role: 'user', content: USER }], max_tokens: 3, stream: true }),
    });
    const events = [...(await raw.text()).matchAll(/^event: (\S+)$/gm)].map((x) => x[1]);
    expect(events.slice(0, 3)).toEqual(['message_start', 'content_block_start', 'ping']);
  });

  it('tool use round trip: a forced call\'s input validates; streamed input_json_delta gives the same input; the tool result reaches the prompt', async () => {
    const validate = ajv.compile(WEATHER.input_schema);
    const ask: Anthropic.MessageParam = { role: 'user', content: 'What is the weather in Paris?' };
    for (let i = 0; i < 5; i++) {
      const m = await create({ model: c.modelId, messages: [ask], tools: [WEATHER, ADD], tool_choice: { type: 'any' }, max_tokens: 200, temperature: 1 });
      expect(m.stop_reason).toBe('tool_use');
      const use = m.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      expect(use).toBeDefined();
      expect(use!.id).toMatch(/^toolu_/);
      expect(['get_weather', 'add']).toContain(use!.name);
      if (use!.name === 'get_weather') expect(validate(use!.input), JSON.stringify(use!.input)).toBe(true);
      else expect(ajv.compile(ADD.input_schema)(use!.input)).toBe(true);
    }

    const stream = client.messages.stream({ model: c.modelId, messages: [ask], tools: [WEATHER, ADD], tool_choice: { type: 'tool', name: 'get_weather' }, max_tokens: 200, temperature: 0 });
    let partial = '';
    stream.on('inputJson', (delta) => (partial += delta));
    const streamed = await stream.finalMessage();
    const json = await create({ model: c.modelId, messages: [ask], tools: [WEATHER, ADD], tool_choice: { type: 'tool', name: 'get_weather' }, max_tokens: 200, temperature: 0 });
    const sUse = streamed.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!;
    const jUse = json.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!;
    expect(sUse.name).toBe('get_weather');
    expect(JSON.parse(partial)).toEqual(sUse.input);
    expect(sUse.input).toEqual(jUse.input);
    expect(validate(sUse.input)).toBe(true);
    expect(streamed.stop_reason).toBe('tool_use');

    // Round trip: the call and its result go back; the model answers in text (tools offered, none forced).
    const result = (temp: string): Anthropic.MessageParam => ({ role: 'user', content: [{ type: 'tool_result', tool_use_id: jUse.id, content: `${temp} and sunny` }] });
    const conversation = (temp: string): Anthropic.MessageParam[] => [ask, { role: 'assistant', content: json.content }, result(temp)];
    const answer = await create({ model: c.modelId, messages: conversation('21 degrees'), tools: [WEATHER], tool_choice: { type: 'none' }, max_tokens: 20, temperature: 0 });
    expect(answer.content.every((b) => b.type === 'text')).toBe(true);
    expect(['end_turn', 'max_tokens']).toContain(answer.stop_reason);
    // The result is in the prompt: a longer one costs more input tokens, exactly as count_tokens says.
    const counted = await client.messages.countTokens({ model: c.modelId, messages: conversation('21 degrees'), tools: [WEATHER], tool_choice: { type: 'none' } });
    expect(counted.input_tokens).toBe(total(answer.usage));
    const longer = await client.messages.countTokens({ model: c.modelId, messages: conversation('21 degrees, light wind from the west'), tools: [WEATHER], tool_choice: { type: 'none' } });
    expect(longer.input_tokens).toBeGreaterThan(counted.input_tokens);
  });

  it('count_tokens equals the usage of the same request; tools add their description', async () => {
    const counted = await client.messages.countTokens({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }] });
    expect(counted.input_tokens).toBe(total(greedy.usage));
    const withTools = await client.messages.countTokens({ model: c.modelId, system: SYSTEM, messages: [{ role: 'user', content: USER }], tools: [WEATHER] });
    expect(withTools.input_tokens).toBeGreaterThan(counted.input_tokens);
  });

  it('errors in Anthropic\'s shape through the SDK: missing max_tokens, unknown model, wrong key, bad tool_choice, bad schema', async () => {
    const noMax = await apiError(() => client.messages.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }] } as unknown as Anthropic.MessageCreateParamsNonStreaming));
    expect(noMax).toBeInstanceOf(Anthropic.BadRequestError);
    expect(noMax.error).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } });

    const unknown = await apiError(() => client.messages.create({ model: 'claude-opus-4', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }));
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
    expect(unknown.error).toEqual({ type: 'error', error: { type: 'not_found_error', message: expect.stringContaining('claude-opus-4') } });

    const wrongKey = new Anthropic({ baseURL: c.a.apiUrl, apiKey: 'sk-wrong', maxRetries: 0 });
    const auth = await apiError(() => wrongKey.messages.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }));
    expect(auth).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((auth.error as { error: { type: string } }).error.type).toBe('authentication_error');

    const badChoice = await apiError(() => client.messages.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, tools: [WEATHER], tool_choice: { type: 'tool', name: 'nope' } }));
    expect(badChoice.status).toBe(400);
    expect(badChoice.message).toContain('nope');

    const badSchema = await apiError(() =>
      client.messages.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, tools: [{ name: 'x', input_schema: { type: 'object', properties: { s: { type: 'string', pattern: '^a+$' } } } }], tool_choice: { type: 'any' } }),
    );
    expect(badSchema.status).toBe(400);
    expect(badSchema.message).toContain('pattern');

    const image = await apiError(() =>
      client.messages.create({ model: c.modelId, max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }] }),
    );
    expect(image.status).toBe(400);
    expect(image.message).toContain('only text');

    const countErr = await apiError(() => client.messages.countTokens({ model: 'nope', messages: [{ role: 'user', content: 'Hi' }] }));
    expect(countErr.status).toBe(404);
  });

  it('a conversation sent again reads its prompt from the prefix cache: cache_read_input_tokens, input_tokens the rest, JSON and stream alike', async () => {
    const request = { model: c.modelId, system: SYSTEM, messages: [{ role: 'user' as const, content: `${USER} Tell it again.` }], max_tokens: 8, temperature: 0 };
    const first = await client.messages.create(request);
    const again = await client.messages.create(request);
    expect(textOf(again)).toBe(textOf(first));
    expect(total(again.usage)).toBe(total(first.usage));
    // Whole 16-token blocks of the prompt were kept by the stages after the first request.
    expect(again.usage.cache_read_input_tokens).toBeGreaterThanOrEqual(16);
    expect(again.usage.cache_creation_input_tokens).toBe(0);
    const streamed = await client.messages.stream(request).finalMessage();
    expect(streamed.usage.cache_read_input_tokens).toBeGreaterThanOrEqual(16);
    expect(total(streamed.usage)).toBe(total(first.usage));
  });

  it('metrics count the Anthropic generations under their own endpoint label', async () => {
    const stop = await metric(c.a, 'edge_node_generations_total{endpoint="anthropic",finish="stop"}', KEY);
    const length = await metric(c.a, 'edge_node_generations_total{endpoint="anthropic",finish="length"}', KEY);
    expect(stop + length).toBeGreaterThanOrEqual(10);
    expect(await metric(c.a, 'edge_node_http_requests_total{route="/v1/messages",status="200"}', KEY)).toBeGreaterThanOrEqual(10);
    expect(await metric(c.a, 'edge_node_http_requests_total{route="/v1/messages/count_tokens",status="200"}', KEY)).toBeGreaterThanOrEqual(3);
  });
});
