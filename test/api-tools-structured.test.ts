/**
 * What apps expect from a local model server, against a live 2-node cluster with the official `openai` client:
 * forced tool calls and json_schema outputs that parse and validate in 20/20 runs at temperature 1 (stories260K,
 * SentencePiece with byte fallback; and a random-weight model with SmolLM2's 49k byte-level BPE vocabulary and ChatML
 * template), streamed tool-call deltas that reassemble to the same call, logprobs consistent with the sampler, n > 1,
 * the Responses API with and without streaming, and every new error case in OpenAI's error shape.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, REPO_ROOT } from './support/cluster-harness.js';
import { startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { SHARED_MODELS } from './support/single-device-run.js';

const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 24 },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer', minimum: 1, maximum: 7 },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
    strict: true,
  },
};
const OTHER_TOOL = {
  type: 'function' as const,
  function: { name: 'add', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } },
};
const PERSON_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 30 },
    age: { type: 'integer', minimum: 0 },
    pets: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 3 },
    happy: { type: 'boolean' },
    home: { anyOf: [{ type: 'null' }, { type: 'object', properties: { town: { type: 'string', maxLength: 16 } }, required: ['town'] }] },
  },
  required: ['name', 'age', 'pets', 'happy', 'home'],
  additionalProperties: false,
};
const MESSAGES = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];

const ajv = new Ajv({ strict: false });
const validWeather = ajv.compile(WEATHER_TOOL.function.parameters);
const validPerson = ajv.compile(PERSON_SCHEMA);

/** Runs `n` jobs, at most `width` at a time (the machine is shared: 20 prompts at once would only queue). */
async function pool<T>(n: number, width: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

/** 20 runs at temperature 1 of a forced tool call and of a json_schema answer: each must parse and validate. */
function structuredSuite(name: string, getClient: () => { client: OpenAI; model: string }): void {
  it(`${name}: forced tool calls parse and validate in 20/20 runs at temperature 1`, async () => {
    const { client, model } = getClient();
    const runs = await pool(20, 4, (i) =>
        client.chat.completions.create({
          model,
          messages: MESSAGES,
          tools: [WEATHER_TOOL, OTHER_TOOL],
          tool_choice: i % 2 === 0 ? { type: 'function', function: { name: 'get_weather' } } : 'required',
          temperature: 1,
          max_tokens: 120,
          seed: 1000 + i,
        }),
    );
    let named = 0;
    for (const [i, r] of runs.entries()) {
      const c = r.choices[0];
      expect(c.finish_reason).toBe('tool_calls');
      expect(c.message.tool_calls).toHaveLength(1);
      const call = c.message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
      expect(call.type).toBe('function');
      expect(call.id).toMatch(/^call_/);
      const args: unknown = JSON.parse(call.function.arguments);
      if (i % 2 === 0) expect(call.function.name).toBe('get_weather');
      if (call.function.name === 'get_weather') {
        named++;
        expect(validWeather(args), JSON.stringify(args)).toBe(true);
      } else {
        expect(call.function.name).toBe('add');
        expect(typeof (args as { a: unknown }).a).toBe('number');
        expect(typeof (args as { b: unknown }).b).toBe('number');
      }
    }
    expect(named).toBeGreaterThanOrEqual(10);
  }, 400_000);

  it(`${name}: json_schema answers parse and validate in 20/20 runs at temperature 1`, async () => {
    const { client, model } = getClient();
    const runs = await pool(20, 4, (i) =>
        client.chat.completions.create({
          model,
          messages: [{ role: 'user', content: 'Describe a person as JSON.' }],
          response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON_SCHEMA, strict: true } },
          temperature: 1,
          max_tokens: 150,
          seed: 2000 + i,
        }),
    );
    const texts = runs.map((r) => r.choices[0].message.content!);
    for (const t of texts) expect(validPerson(JSON.parse(t)), t).toBe(true);
    // Temperature 1 with different seeds: the model's choices show (not one forced answer).
    expect(new Set(texts).size).toBeGreaterThan(10);
  }, 400_000);
}

describe('tools, structured output, logprobs, n and the Responses API (stories260K, 2 nodes)', () => {
  const h = new ClusterHarness('api-tools');
  let c: ApiCluster;
  let client: OpenAI;
  beforeAll(async () => {
    c = await startApiCluster(h, { args: ['--queue-length', '64'] });
    client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
  }, 60_000);
  afterAll(() => h.cleanup());

  structuredSuite('stories260K', () => ({ client, model: c.modelId }));

  it('streamed tool-call deltas reassemble to the same call as the JSON answer', async () => {
    const req = { model: c.modelId, messages: MESSAGES, tools: [WEATHER_TOOL], tool_choice: 'required' as const, temperature: 1, max_tokens: 120, seed: 77 };
    const whole = await client.chat.completions.create(req);
    const expected = whole.choices[0].message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    const stream = await client.chat.completions.create({ ...req, stream: true });
    const calls: { id?: string; name: string; args: string }[] = [];
    let finish: string | null = null;
    let content = '';
    for await (const chunk of stream) {
      const ch = chunk.choices[0];
      if (!ch) continue;
      content += ch.delta.content ?? '';
      for (const d of ch.delta.tool_calls ?? []) {
        calls[d.index] ??= { name: '', args: '' };
        if (d.id) calls[d.index].id = d.id;
        calls[d.index].name += d.function?.name ?? '';
        calls[d.index].args += d.function?.arguments ?? '';
      }
      finish = ch.finish_reason ?? finish;
    }
    expect(finish).toBe('tool_calls');
    expect(content).toBe('');
    expect(calls).toHaveLength(1);
    expect(calls[0].id).toMatch(/^call_/);
    expect(calls[0].name).toBe(expected.function.name);
    expect(calls[0].args).toBe(expected.function.arguments);
    expect(calls[0].args.length).toBeGreaterThan(24); // it did arrive in several deltas
    expect(validWeather(JSON.parse(calls[0].args))).toBe(true);
  });

  it('a tool result in the conversation: role "tool" is accepted and the model answers', async () => {
    const r = await client.chat.completions.create({
      model: c.modelId,
      messages: [
        ...MESSAGES,
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
      ],
      tools: [WEATHER_TOOL],
      tool_choice: 'none',
      max_tokens: 12,
      temperature: 0,
    });
    expect(r.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(r.choices[0].message.tool_calls ?? []).toHaveLength(0);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(40); // the tool descriptions and the result are in the prompt
  });

  it('json_object: any JSON object, streamed', async () => {
    const stream = await client.chat.completions.create({ model: c.modelId, messages: MESSAGES, response_format: { type: 'json_object' }, max_tokens: 60, temperature: 1, seed: 5, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    const v: unknown = JSON.parse(text);
    expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
  });

  it('logprobs agree with the sampler: the greedy token is the top logprob; streamed entries equal the JSON ones', async () => {
    const req = { model: c.modelId, messages: MESSAGES, max_tokens: 16, temperature: 0, logprobs: true, top_logprobs: 3 };
    const r = await client.chat.completions.create(req);
    const entries = r.choices[0].logprobs!.content!;
    expect(entries.length).toBe(r.usage!.completion_tokens);
    for (const e of entries) {
      expect(e.top_logprobs).toHaveLength(3);
      expect(e.logprob).toBe(e.top_logprobs[0].logprob);
      expect(e.bytes).toEqual(e.top_logprobs[0].bytes);
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top_logprobs[1].logprob).toBeLessThanOrEqual(e.top_logprobs[0].logprob);
      const mass = e.top_logprobs.reduce((a, t) => a + Math.exp(t.logprob), 0);
      expect(mass).toBeLessThanOrEqual(1 + 1e-6);
    }
    expect(entries.map((e) => e.token).join('')).toBe(r.choices[0].message.content);
    const stream = await client.chat.completions.create({ ...req, stream: true });
    const streamed: OpenAI.Chat.Completions.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(entries);

    // Sampled at temperature 1: each chosen token's logprob is its own (not the top's), and sums are consistent.
    const s = await client.completions.create({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 12, temperature: 1, seed: 9, logprobs: 5 });
    const lp = s.choices[0].logprobs!;
    expect(lp.tokens!.join('')).toBe(s.choices[0].text);
    lp.tokens!.forEach((t, i) => {
      const top = lp.top_logprobs![i];
      const best = Math.max(...Object.values(top));
      expect(lp.token_logprobs![i]).toBeLessThanOrEqual(best + 1e-9);
      if (t in top) expect(top[t]).toBeCloseTo(lp.token_logprobs![i], 9);
    });
  });

  it('n > 1: several choices of one prompt, each its own sample', async () => {
    const r = await client.chat.completions.create({ model: c.modelId, messages: MESSAGES, max_tokens: 20, temperature: 1, seed: 3, n: 3 });
    expect(r.choices.map((ch) => ch.index)).toEqual([0, 1, 2]);
    expect(new Set(r.choices.map((ch) => ch.message.content)).size).toBeGreaterThan(1);
    const total = r.choices.reduce((a, ch) => a + (ch.message.content ? 1 : 0), 0);
    expect(total).toBe(3);
    expect(r.usage!.completion_tokens).toBeGreaterThanOrEqual(3);
    // The same seed gives the same choices again.
    const again = await client.chat.completions.create({ model: c.modelId, messages: MESSAGES, max_tokens: 20, temperature: 1, seed: 3, n: 3 });
    expect(again.choices.map((ch) => ch.message.content)).toEqual(r.choices.map((ch) => ch.message.content));
    const stream = await client.chat.completions.create({ model: c.modelId, messages: MESSAGES, max_tokens: 20, temperature: 1, seed: 3, n: 3, stream: true });
    const texts = ['', '', ''];
    for await (const chunk of stream) for (const ch of chunk.choices) texts[ch.index] += ch.delta.content ?? '';
    expect(texts).toEqual(r.choices.map((ch) => ch.message.content));
  });

  it('responses.create: text input with instructions, JSON and streamed (the deltas make the final text)', async () => {
    const r = await client.responses.create({ model: c.modelId, input: 'Tell me a story.', instructions: 'You tell stories.', max_output_tokens: 20, temperature: 0 });
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_/);
    expect(r.output[0].type).toBe('message');
    expect(r.output_text.length).toBeGreaterThan(5);
    expect(r.usage!.output_tokens).toBeLessThanOrEqual(20);
    expect(['completed', 'incomplete']).toContain(r.status);

    const stream = await client.responses.create({ model: c.modelId, input: [{ role: 'user', content: 'Tell me a story.' }], instructions: 'You tell stories.', max_output_tokens: 20, temperature: 0, stream: true });
    const types: string[] = [];
    let text = '';
    let final: OpenAI.Responses.Response | null = null;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed' || e.type === 'response.incomplete') final = e.response;
    }
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types).toContain('response.output_text.done');
    expect(text).toBe(r.output_text); // same prompt, greedy
    expect(final!.output_text ?? (final!.output[0] as OpenAI.Responses.ResponseOutputMessage).content.map((p) => ('text' in p ? p.text : '')).join('')).toBe(text);
  });

  it('responses.create: forced function call and text.format json_schema', async () => {
    const r = await client.responses.create({
      model: c.modelId,
      input: 'Weather in Oslo?',
      tools: [{ type: 'function', name: 'get_weather', parameters: WEATHER_TOOL.function.parameters, strict: true }],
      tool_choice: 'required',
      max_output_tokens: 120,
      temperature: 1,
    });
    const call = r.output.find((o) => o.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call.name).toBe('get_weather');
    expect(validWeather(JSON.parse(call.arguments))).toBe(true);

    const stream = await client.responses.create({
      model: c.modelId,
      input: 'Weather in Oslo?',
      tools: [{ type: 'function', name: 'get_weather', parameters: WEATHER_TOOL.function.parameters, strict: true }],
      tool_choice: 'required',
      max_output_tokens: 120,
      temperature: 1,
      seed: 4,
      stream: true,
    } as OpenAI.Responses.ResponseCreateParamsStreaming);
    let args = '';
    let done = '';
    for await (const e of stream) {
      if (e.type === 'response.function_call_arguments.delta') args += e.delta;
      if (e.type === 'response.function_call_arguments.done') done = e.arguments;
    }
    expect(args).toBe(done);
    expect(validWeather(JSON.parse(args))).toBe(true);

    const j = await client.responses.create({
      model: c.modelId,
      input: 'A person, please.',
      text: { format: { type: 'json_schema', name: 'person', schema: PERSON_SCHEMA, strict: true } },
      max_output_tokens: 150,
      temperature: 1,
    });
    expect(validPerson(JSON.parse(j.output_text))).toBe(true);
  });

  it('every new error case answers in OpenAI\'s error shape', async () => {
    const expectError = async (p: Promise<unknown>, status: number, param: string | null, code: string, message: RegExp) => {
      const err = (await p.then(() => null, (e: unknown) => e)) as InstanceType<typeof OpenAI.APIError> | null;
      expect(err, `expected a ${status}`).toBeInstanceOf(OpenAI.APIError);
      expect(err!.status).toBe(status);
      const body = err!.error as { message: string; type: string; param: string | null; code: string };
      expect(body.type).toBe('invalid_request_error');
      expect(body.param).toBe(param);
      expect(body.code).toBe(code);
      expect(body.message).toMatch(message);
    };
    const m = c.modelId;
    const chat = client.chat.completions;
    await expectError(chat.create({ model: m, messages: MESSAGES, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a+' } } } }), 400, 'response_format.json_schema.schema', 'invalid_value', /"pattern" cannot be enforced/);
    await expectError(chat.create({ model: m, messages: MESSAGES, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'strin' } } } }), 400, 'response_format.json_schema.schema', 'invalid_value', /not a valid JSON Schema: .*type/);
    await expectError(chat.create({ model: m, messages: MESSAGES, response_format: { type: 'xml' } as never }), 400, 'response_format.type', 'invalid_value', /json_schema/);
    await expectError(chat.create({ model: m, messages: MESSAGES, tools: [WEATHER_TOOL], tool_choice: { type: 'function', function: { name: 'nope' } } }), 400, 'tool_choice', 'invalid_value', /"nope", which is not among "tools"/);
    await expectError(chat.create({ model: m, messages: MESSAGES, tool_choice: 'required' }), 400, 'tool_choice', 'invalid_value', /no "tools"/);
    await expectError(chat.create({ model: m, messages: MESSAGES, tools: [{ type: 'function', function: { name: 'bad name!' } }] }), 400, 'tools[0].function.name', 'invalid_value', /letters, digits/);
    await expectError(chat.create({ model: m, messages: MESSAGES, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { x: { type: 'number', minimum: 0.5 } } } } }] }), 400, 'tools[0].function.parameters', 'invalid_value', /numeric bounds/);
    await expectError(chat.create({ model: m, messages: MESSAGES, tools: [WEATHER_TOOL], tool_choice: 'required', max_tokens: 10 }), 400, 'max_tokens', 'invalid_value', /needs at least \d+ tokens/);
    await expectError(chat.create({ model: m, messages: MESSAGES, n: 9 }), 400, 'n', 'invalid_value', /between 1 and 8/);
    await expectError(chat.create({ model: m, messages: MESSAGES, top_logprobs: 2 }), 400, 'top_logprobs', 'invalid_value', /needs "logprobs": true/);
    await expectError(chat.create({ model: m, messages: MESSAGES, logprobs: true, top_logprobs: 21 }), 400, 'top_logprobs', 'invalid_value', /between 0 and 20/);
    await expectError(chat.create({ model: m, messages: [...MESSAGES, { role: 'tool', content: 'x' } as never] }), 400, 'messages[1].tool_call_id', 'missing_required_parameter', /tool_call_id/);
    await expectError(client.completions.create({ model: m, prompt: 'x', logprobs: 6 }), 400, 'logprobs', 'invalid_value', /between 0 and 5/);
    await expectError(client.responses.create({ model: m, input: 'x', previous_response_id: 'resp_1' }), 400, 'previous_response_id', 'unsupported_value', /not stored/);
    await expectError(client.responses.create({ model: m, input: [{ type: 'input_image' } as never] }), 400, 'input[0].type', 'unsupported_value', /not supported/);
    await expectError(client.responses.create({ model: m, input: [] }), 400, 'input', 'invalid_type', /non-empty array/);
    await expectError(client.responses.create({ model: m, input: 'x', text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object', properties: { a: { type: 'string', format: 'email' } } } } } }), 400, 'text.format.schema', 'invalid_value', /"format" cannot be enforced/);
    await expectError(client.responses.create({ model: m, input: 'x', tool_choice: 'required' }), 400, 'tool_choice', 'invalid_value', /no "tools"/);
    const notFound = (await client.responses.create({ model: 'nope', input: 'x' }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(notFound.status).toBe(404);
    expect((notFound.error as { code: string }).code).toBe('model_not_found');
  });
});

describe('constrained sampling on a random-weight model with a 49k byte-level BPE vocabulary (2 nodes)', () => {
  const h = new ClusterHarness('api-tools-bpe');
  const dir = mkdtempSync(join(tmpdir(), 'edge-tools-'));
  const modelPath = join(dir, 'tiny-smollm2.gguf');
  let client: OpenAI;
  let model: string;
  beforeAll(async () => {
    execFileSync(process.execPath, [join(REPO_ROOT, 'packages/testkit/scripts/make-model.mjs'), '--preset', 'tiny-smollm2', '--tokenizer', join(SHARED_MODELS, 'smollm2-135m-instruct-tokenizer'), '--out', modelPath, '--seed', '7'], { stdio: 'ignore' });
    const c = await startApiCluster(h, { model: modelPath, args: ['--split', '2,2', '--queue-length', '64'] });
    client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    model = c.modelId;
  }, 90_000);
  afterAll(async () => {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  structuredSuite('random-weight tiny-smollm2', () => ({ client, model }));
});
