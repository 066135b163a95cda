/**
 * Per-request speculation in the OpenAI (chat, completions: llama-server's `timings` too), Responses, Anthropic and Ollama dialects of a live 2-node cluster (two `edge-node
 * start` processes, stories260K split 2,3), each driven by its official client: the extension switch (`speculate`
 * at the top of a Responses or Anthropic request, `options.speculate` on Ollama) gives the same greedy text on and
 * off, the answer's usage reports the drafts only when speculation was asked for, and a value that is not a boolean
 * gets the dialect's own 400. And the bench route's `speculate` and `prompt: "quoting"`, which `edge-node bench`'s
 * speculation comparison sends.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ollama, type GenerateRequest, type GenerateResponse, type Options } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness } from './support/cluster-harness.js';
import { startApiCluster, type ApiCluster } from './support/api-cluster.js';
import type { BenchResponse } from '../packages/node/src/api/bench-route.js';

/** A text the answer keeps quoting: prompt lookup drafts from it (stories260K also repeats itself greedily). */
const QUOTING = 'Tom had a big red ball. Tom liked to play with the ball in the park. One day, Tom';
const MAX = 64;

interface SpeculationUsage {
  drafted_tokens: number;
  accepted_tokens: number;
  decode_walks: number;
  tokens_per_walk: number;
  draft_length: number;
}

/** llama-server's timings object, which OpenAI answers carry when speculation ran. */
interface Timings {
  prompt_n: number;
  prompt_ms: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_second: number;
  draft_n: number;
  draft_n_accepted: number;
}

/** The drafts a usage reports: some made, at most all accepted, more than one token per walk on average. */
function expectDrafted(s: SpeculationUsage | undefined, tokens: number, label: string): void {
  expect(s, label).toBeDefined();
  console.log(`${label}: ${s!.accepted_tokens} of ${s!.drafted_tokens} drafted tokens accepted, ${s!.decode_walks} walks for ${tokens} tokens`);
  expect(s!.drafted_tokens).toBeGreaterThan(0);
  expect(s!.accepted_tokens).toBeLessThanOrEqual(s!.drafted_tokens);
  expect(s!.decode_walks).toBeLessThanOrEqual(tokens);
  expect(s!.tokens_per_walk).toBeGreaterThanOrEqual(1);
  expect(s!.draft_length).toBeGreaterThanOrEqual(0);
  expect(s!.draft_length).toBeLessThanOrEqual(16);
}

/** The timings agree with the usage: prompt tokens computed, tokens after the first, the same drafts. */
function expectTimings(t: Timings | undefined, usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } | null; speculation?: SpeculationUsage }): void {
  expect(t).toBeDefined();
  expect(t!.prompt_n + (usage.prompt_tokens_details?.cached_tokens ?? 0)).toBe(usage.prompt_tokens);
  expect(t!.predicted_n).toBe(usage.completion_tokens - 1);
  expect(t!.prompt_ms).toBeGreaterThan(0);
  expect(t!.predicted_ms).toBeGreaterThan(0);
  expect(t!.predicted_per_second).toBeCloseTo((t!.predicted_n / t!.predicted_ms) * 1000, 0);
  expect(t!.draft_n).toBe(usage.speculation!.drafted_tokens);
  expect(t!.draft_n_accepted).toBe(usage.speculation!.accepted_tokens);
}

describe('speculate in every dialect, against a 2-node cluster', () => {
  const h = new ClusterHarness('api-dialect-speculation');
  let c: ApiCluster;
  afterAll(() => h.cleanup());
  beforeAll(async () => {
    c = await startApiCluster(h);
  }, 60_000);

  it("OpenAI chat and completions (openai client): llama-server's timings beside the usage when speculation ran, none without", async () => {
    const client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'none', maxRetries: 0 });
    type Timed<T> = T & { timings?: Timings; usage: { speculation?: SpeculationUsage } };
    const chat = (speculate: boolean) =>
      client.chat.completions.create({ model: c.modelId, messages: [{ role: 'user', content: QUOTING }], max_tokens: MAX, temperature: 0, speculate } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming) as Promise<Timed<OpenAI.Chat.ChatCompletion>>;
    const [off, on] = await Promise.all([chat(false), chat(true)]);
    expect(on.choices[0].message.content).toBe(off.choices[0].message.content);
    expect(off.timings).toBeUndefined();
    expectDrafted(on.usage.speculation, on.usage.completion_tokens, 'openai chat');
    expectTimings(on.timings, on.usage as Timed<OpenAI.Chat.ChatCompletion>['usage'] & OpenAI.CompletionUsage);
    console.log(`openai chat timings: ${JSON.stringify(on.timings)}`);

    // A prediction turns speculation on (legacy completions, token ids of the answer it expects: all accepted).
    const ref = (await client.completions.create({ model: c.modelId, prompt: QUOTING, max_tokens: MAX, temperature: 0, speculate: false } as OpenAI.CompletionCreateParamsNonStreaming)) as Timed<OpenAI.Completion>;
    const predicted = (await client.completions.create({ model: c.modelId, prompt: QUOTING, max_tokens: MAX, temperature: 0, prediction: { type: 'content', content: ref.choices[0].text } } as OpenAI.CompletionCreateParamsNonStreaming)) as Timed<OpenAI.Completion>;
    expect(predicted.choices[0].text).toBe(ref.choices[0].text);
    expectTimings(predicted.timings, predicted.usage as Timed<OpenAI.Completion>['usage'] & OpenAI.CompletionUsage);
    expect(predicted.timings!.draft_n_accepted).toBeGreaterThan(0);

    // Streamed: the usage chunk (stream_options.include_usage) carries them.
    const stream = await client.chat.completions.create({ model: c.modelId, messages: [{ role: 'user', content: QUOTING }], max_tokens: MAX, temperature: 0, speculate: true, stream: true, stream_options: { include_usage: true } } as OpenAI.Chat.ChatCompletionCreateParamsStreaming);
    let text = '';
    let last: Timed<OpenAI.Chat.ChatCompletionChunk> | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      last = chunk as Timed<OpenAI.Chat.ChatCompletionChunk>;
    }
    expect(text).toBe(off.choices[0].message.content);
    expectTimings(last!.timings, last!.usage as Timed<OpenAI.Chat.ChatCompletion>['usage'] & OpenAI.CompletionUsage);
  }, 120_000);

  it('Responses (openai client): top-level speculate; usage.speculation only when asked; a bad value is a 400 naming it', async () => {
    const client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'none', maxRetries: 0 });
    const create = (speculate: unknown) =>
      client.responses.create({ model: c.modelId, input: QUOTING, max_output_tokens: MAX, temperature: 0, ...(speculate === undefined ? {} : { speculate }) } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    const [off, on, plain] = await Promise.all([create(false), create(true), create(undefined)]);
    expect(on.output_text).toBe(off.output_text);
    expect(plain.output_text).toBe(off.output_text);
    expect(on.output_text.length).toBeGreaterThan(20);
    const usage = (r: OpenAI.Responses.Response) => r.usage as OpenAI.Responses.ResponseUsage & { speculation?: SpeculationUsage };
    expectDrafted(usage(on).speculation, usage(on).output_tokens, 'responses');
    expect(usage(off).speculation).toBeUndefined();
    expect(usage(plain).speculation).toBeUndefined();

    // Streamed: the final response (completed, or incomplete at max_output_tokens) carries the same usage extension.
    const stream = await client.responses.create({ model: c.modelId, input: QUOTING, max_output_tokens: MAX, temperature: 0, stream: true, speculate: true } as OpenAI.Responses.ResponseCreateParamsStreaming);
    let completed: OpenAI.Responses.Response | null = null;
    for await (const e of stream) if (e.type === 'response.completed' || e.type === 'response.incomplete') completed = e.response;
    expect(completed!.output.map((o) => (o.type === 'message' ? o.content.map((p) => (p.type === 'output_text' ? p.text : '')).join('') : '')).join('')).toBe(off.output_text);
    expectDrafted(usage(completed!).speculation, usage(completed!).output_tokens, 'responses, streamed');

    const err = await create('yes').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('speculate');
    expect((err as Error).message).toMatch(/"speculate" must be true or false/);
  }, 120_000);

  it('Anthropic (@anthropic-ai/sdk): top-level speculate; usage.speculation in the message and its message_delta; a bad value is an invalid_request_error', async () => {
    const client = new Anthropic({ baseURL: c.a.apiUrl, apiKey: 'none', maxRetries: 0 });
    // The SDK (1.17) no longer types `temperature` (see api-anthropic.test.ts); the API and this server take it.
    type Params = Anthropic.MessageCreateParamsNonStreaming & { speculate?: unknown; temperature?: number };
    const body = (speculate: unknown): Params => ({ model: c.modelId, max_tokens: MAX, temperature: 0, messages: [{ role: 'user', content: QUOTING }], ...(speculate === undefined ? {} : { speculate }) });
    const text = (m: Anthropic.Message) => m.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
    const usage = (m: Anthropic.Message) => m.usage as Anthropic.Usage & { speculation?: SpeculationUsage };
    const [off, on] = await Promise.all([client.messages.create(body(false)), client.messages.create(body(true))]);
    expect(text(on)).toBe(text(off));
    expect(text(on).length).toBeGreaterThan(20);
    expectDrafted(usage(on).speculation, on.usage.output_tokens, 'anthropic');
    expect(usage(off).speculation).toBeUndefined();

    const stream = client.messages.stream({ ...body(true), stream: true } as Anthropic.MessageStreamParams);
    let deltaUsage: (Anthropic.MessageDeltaUsage & { speculation?: SpeculationUsage }) | null = null;
    stream.on('streamEvent', (e) => {
      if (e.type === 'message_delta') deltaUsage = e.usage;
    });
    const streamed = await stream.finalMessage();
    expect(text(streamed)).toBe(text(off));
    expectDrafted(deltaUsage!.speculation, streamed.usage.output_tokens, 'anthropic, streamed');

    const err = await client.messages.create(body(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = (err as InstanceType<typeof Anthropic.BadRequestError>).error as { type: string; error: { type: string; message: string } };
    expect(e.type).toBe('error');
    expect(e.error.type).toBe('invalid_request_error');
    expect(e.error.message).toMatch(/"speculate" must be true or false/);
  }, 120_000);

  it('Ollama (ollama client): options.speculate on /api/generate and /api/chat; a speculation field only when asked; a bad value is a 400 {error}', async () => {
    const ollama = new Ollama({ host: c.a.apiUrl });
    type Speculated = GenerateResponse & { speculation?: SpeculationUsage };
    // Greedy without Ollama's default repeat penalty: the plain argmax, as in the other dialects.
    const options = (speculate: unknown) => ({ temperature: 0, repeat_penalty: 1, num_predict: MAX, ...(speculate === undefined ? {} : { speculate }) }) as Partial<Options>;
    const generate = (speculate: unknown) => ollama.generate({ model: c.modelId, prompt: QUOTING, raw: true, stream: false, options: options(speculate) } as GenerateRequest & { stream: false }) as Promise<Speculated>;
    const [off, on] = await Promise.all([generate(false), generate(true)]);
    expect(on.response).toBe(off.response);
    expect(on.response?.length).toBeGreaterThan(20);
    expectDrafted(on.speculation, on.eval_count, 'ollama generate');
    expect(off.speculation).toBeUndefined();

    const chat = (speculate: unknown) => ollama.chat({ model: c.modelId, messages: [{ role: 'user', content: QUOTING }], stream: false, options: options(speculate) });
    const [chatOff, chatOn] = await Promise.all([chat(false), chat(true)]);
    expect(chatOn.message.content).toBe(chatOff.message.content);
    expectDrafted((chatOn as typeof chatOn & { speculation?: SpeculationUsage }).speculation, chatOn.eval_count, 'ollama chat');

    // Streamed: the last (done) line carries it.
    let last: Speculated | null = null;
    for await (const part of await ollama.generate({ model: c.modelId, prompt: QUOTING, raw: true, stream: true, options: options(true) })) last = part as Speculated;
    expect(last!.done).toBe(true);
    expectDrafted(last!.speculation, last!.eval_count, 'ollama generate, streamed');

    const err = await generate('on').catch((e: unknown) => e);
    // The client's ResponseError (not exported by the package at run time): Ollama's {"error"} with the status.
    const e = err as { name?: string; status_code?: number; error?: string };
    expect(e.name).toBe('ResponseError');
    expect(e.status_code).toBe(400);
    expect(e.error).toMatch(/"options\.speculate" must be true or false/);
  }, 120_000);

  it('the bench route: speculate and a quoting prompt; plain runs by default; bad values are 400s naming the field', async () => {
    const bench = (body: Record<string, unknown>) => h.postJson(`${c.a.apiUrl}/v1/edge-node/bench`, { prompt_tokens: 48, gen_tokens: 32, ...body });
    const on = await bench({ prompt: 'quoting', speculate: true, runs: 2 });
    expect(on.status).toBe(200);
    const runs = (on.json as BenchResponse).runs;
    expect(runs).toHaveLength(2);
    for (const r of runs) {
      expect(r.promptTokens).toBe(48);
      expect(r.generatedTokens).toBe(32);
      expect(r.speculation!.accepted).toBeLessThanOrEqual(r.speculation!.drafted);
      // The steps say how many tokens each walk returned; they add up to the tokens after the first.
      expect(r.steps.slice(1).reduce((n, s) => n + (s.tokens ?? 1), 0)).toBe(31);
      expect(r.steps.length - 1).toBe(r.speculation!.walks);
    }
    expect(runs.reduce((n, r) => n + r.speculation!.drafted, 0)).toBeGreaterThan(0);
    const plain = await bench({ prompt: 'quoting' });
    expect(plain.status).toBe(200);
    expect((plain.json as BenchResponse).runs[0].speculation).toBeUndefined();
    for (const [field, value] of [['speculate', 'yes'], ['prompt', 'text']] as const) {
      const res = await bench({ [field]: value });
      expect(res.status, field).toBe(400);
      expect((res.json as { error: { param: string; message: string } }).error.param).toBe(field);
    }
  }, 120_000);
});
