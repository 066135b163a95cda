/**
 * Every error case of the HTTP API, through the official `openai` client (and raw HTTP where a client cannot send
 * the mistake): the status and OpenAI's error body `{ error: { message, type, param, code } }`. The 2-node cluster
 * runs with an API key, one request at a time, a queue of one and a 256-token context; two more single nodes show
 * the 503s (no model; not enough memory). Bad input must never give a 500 or stop a node.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { metric, startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const KEY = 'sk-test-0123456789';
const auth = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The APIError a client call throws (fails the test if it succeeds). */
async function apiError(call: () => Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call();
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

function expectShape(body: unknown): ErrorBody['error'] {
  const e = (body as ErrorBody).error;
  expect(Object.keys(e).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof e.message).toBe('string');
  expect(e.message.length).toBeGreaterThan(10);
  return e;
}

describe('API errors on a 2-node cluster', () => {
  const h = new ClusterHarness('api-errors');
  let c: ApiCluster;
  let client: OpenAI;
  let noModel: RunningNode;
  let tiny: RunningNode;
  beforeAll(async () => {
    [c, noModel, tiny] = await Promise.all([
      startApiCluster(h, { apiKey: KEY, args: ['--concurrency', '1', '--queue-length', '1', '--context', '256'] }),
      h.startNode({ name: 'nomodel', args: ['--no-mdns'] }),
      h.startNode({ name: 'tiny', args: ['--model', STORIES_GGUF, '--no-mdns', '--memory-budget', '64K'] }),
    ]);
    client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: KEY, maxRetries: 0 });
  }, 90_000);
  afterAll(() => h.cleanup());

  const chat = (extra: Record<string, unknown>) => client.chat.completions.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...extra } as never);

  it('401 without the API key or with a wrong one; / and /health stay open', async () => {
    const wrong = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    const e = await apiError(() => wrong.chat.completions.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }] }));
    expect(e.status).toBe(401);
    expect(e.code).toBe('invalid_api_key');
    expect(e.type).toBe('authentication_error');
    const res = await fetch(`${c.a.apiUrl}/v1/models`);
    expect(res.status).toBe(401);
    expect(expectShape(await res.json()).code).toBe('missing_api_key');
    expect((await fetch(`${c.a.apiUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${c.a.apiUrl}/health`)).status).toBe(200);
    expect((await fetch(`${c.a.apiUrl}/`)).status).toBe(200);
    expect((await client.models.list()).data[0].id).toBe('stories260K');
  });

  it('400 for malformed JSON and a body that is not an object', async () => {
    for (const body of ['{"model": "stories260K", "messages": [', '', '[1, 2]', 'null']) {
      const res = await fetch(`${c.a.apiUrl}/v1/chat/completions`, { method: 'POST', headers: auth, body });
      expect(res.status, body).toBe(400);
      expect(expectShape(await res.json()).type).toBe('invalid_request_error');
    }
  });

  it('400 for missing or wrong fields, naming the field', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ messages: undefined }, 'messages', /messages/],
      [{ messages: [] }, 'messages', /non-empty/],
      [{ model: undefined }, 'model', /"model" is required/],
      [{ model: 42 }, 'model', /string/],
      [{ temperature: 'hot' }, 'temperature', /number/],
      [{ temperature: 5 }, 'temperature', /between 0 and 2/],
      [{ top_p: 0 }, 'top_p', /greater than 0/],
      [{ max_tokens: 0 }, 'max_tokens', /between 1/],
      [{ max_tokens: 2.5 }, 'max_tokens', /whole number/],
      [{ n: 9 }, 'n', /between 1 and 8/],
      [{ stop: 5 }, 'stop', /string or an array/],
      [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4/],
      [{ stream: 'yes' }, 'stream', /true or false/],
      [{ seed: 1.5 }, 'seed', /whole number/],
      [{ frequency_penalty: 3 }, 'frequency_penalty', /between -2 and 2/],
      [{ messages: [{ role: 'robot', content: 'Hi' }] }, 'messages[0].role', /"system", "developer", "user", "assistant" or "tool"/],
      [{ messages: [{ role: 'user' }] }, 'messages[0].content', /string or an array of text parts/],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0].type', /only text parts/],
    ];
    for (const [extra, param, message] of cases) {
      const e = await apiError(() => chat(extra));
      expect(e.status, JSON.stringify(extra)).toBe(400);
      expect(e.param, JSON.stringify(extra)).toBe(param);
      expect((e.error as ErrorBody['error']).message).toMatch(message);
      expect(e.type).toBe('invalid_request_error');
    }
    const p = await apiError(() => client.completions.create({ model: c.modelId, prompt: 17 as never }));
    expect([p.status, p.param]).toEqual([400, 'prompt']);
  });

  it('400 context_length_exceeded for a prompt longer than the context', async () => {
    const long = 'Once upon a time there was a dog. '.repeat(40);
    const e = await apiError(() => client.completions.create({ model: c.modelId, prompt: long, max_tokens: 4 }));
    expect(e.status).toBe(400);
    expect(e.code).toBe('context_length_exceeded');
    expect(e.param).toBe('prompt');
    expect((e.error as ErrorBody['error']).message).toMatch(/context is 256 tokens, and the prompt has \d{3} tokens/);
    const s = await apiError(() => chat({ messages: [{ role: 'user', content: long }], stream: true }));
    expect([s.status, s.code, s.param]).toEqual([400, 'context_length_exceeded', 'messages']);
  });

  it('404 for an unknown model or route', async () => {
    const e = await apiError(() => chat({ model: 'gpt-4o' }));
    expect([e.status, e.code, e.param]).toEqual([404, 'model_not_found', 'model']);
    expect((e.error as ErrorBody['error']).message).toMatch(/serves "stories260K"/);
    const r = await apiError(() => client.models.retrieve('gpt-4o'));
    expect([r.status, r.code]).toEqual([404, 'model_not_found']);
    const res = await fetch(`${c.a.apiUrl}/v1/images/generations`, { method: 'POST', headers: auth, body: '{}' });
    expect(res.status).toBe(404);
    expect(expectShape(await res.json()).code).toBe('unknown_url');
  });

  it('413 for an oversized body', async () => {
    const e = await apiError(() => chat({ messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }] }));
    expect([e.status, e.code]).toEqual([413, 'request_too_large']);
  });

  it('429 when the queue is full (one running, one waiting)', async () => {
    const long = { model: c.modelId, prompt: 'Once upon a time', max_tokens: 240, ignore_eos: true, temperature: 0 };
    const aborts = [new AbortController(), new AbortController()];
    const first = fetch(`${c.a.apiUrl}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...long, stream: true }), signal: aborts[0].signal });
    await h.waitFor(async () => (await metric(c.a, 'edge_node_requests_running', KEY)) === 1, 5000, 'the first request to run');
    const second = fetch(`${c.a.apiUrl}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify(long), signal: aborts[1].signal }).catch((err: Error) => err);
    await h.waitFor(async () => (await metric(c.a, 'edge_node_requests_waiting', KEY)) === 1, 5000, 'the second request to wait', 20);
    const e = await apiError(() => client.completions.create({ model: c.modelId, prompt: 'Hi', max_tokens: 2 }));
    expect([e.status, e.code, e.type]).toEqual([429, 'queue_full', 'rate_limit_error']);
    expect((e.error as ErrorBody['error']).message).toMatch(/1 request\(s\) running and 1 waiting/);
    for (const a of aborts) a.abort();
    await first.catch(() => {});
    await second;
    await h.waitFor(async () => (await metric(c.a, 'edge_node_requests_running', KEY)) === 0 && (await metric(c.a, 'edge_node_requests_waiting', KEY)) === 0, 5000, 'the queue to empty');
    const ok = await client.completions.create({ model: c.modelId, prompt: 'Hi', max_tokens: 2 });
    expect(ok.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('503 with the reason: no model loaded, not enough memory', async () => {
    const none = new OpenAI({ baseURL: `${noModel.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const e = await apiError(() => none.chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }] }));
    expect([e.status, e.code, e.type]).toEqual([503, 'model_not_loaded', 'service_unavailable']);
    expect((await none.models.list()).data).toEqual([]);
    const small = new OpenAI({ baseURL: `${tiny.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const m = await apiError(() => small.completions.create({ model: 'stories260K', prompt: 'Hi', max_tokens: 2 }));
    expect([m.status, m.code]).toEqual([503, 'insufficient_memory']);
    expect((m.error as ErrorBody['error']).message).toMatch(/does not fit/);
  });

  it('after all that, both nodes still serve and nothing answered 500', async () => {
    for (const n of [c.a, c.b]) {
      expect(n.running).toBe(true);
      const viaN = new OpenAI({ baseURL: `${n.apiUrl}/v1`, apiKey: KEY, maxRetries: 0 });
      const r = await viaN.chat.completions.create({ model: c.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 });
      expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    }
    const text = await (await fetch(`${c.a.apiUrl}/metrics`, { headers: auth })).text();
    expect(text).toMatch(/edge_node_http_requests_total\{route="\/v1\/chat\/completions",status="400"\} \d+/);
    expect(text).not.toMatch(/status="5\d\d"/);
    // The process's own gauges: a node's resident memory is tens of MB at least and below this machine's memory.
    const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1]);
    expect(rss).toBeGreaterThan(20e6);
    expect(rss).toBeLessThan(8e9);
  });
});
