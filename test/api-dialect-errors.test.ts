/**
 * Bad input to the Anthropic and Ollama dialects over raw HTTP (what a client library would not send): malformed
 * JSON, missing and wrong-typed fields, unknown models, an oversized body, a context too small, a missing key — each
 * a clear 4xx in that dialect's error shape, never a 500, and the 2-node cluster serves normally afterwards.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { metric, startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const KEY = 'sk-test-dialects-42';
const CONTEXT = 256;

interface Answer {
  status: number;
  body: unknown;
}

describe('dialect errors on a 2-node cluster', () => {
  const h = new ClusterHarness('api-dialect-errors');
  let c: ApiCluster;
  /** A node whose memory budget cannot hold the model: requests are valid, then fail inside the cluster. */
  let tiny: RunningNode;
  beforeAll(async () => {
    [c, tiny] = await Promise.all([
      startApiCluster(h, { apiKey: KEY, args: ['--context', String(CONTEXT)] }),
      h.startNode({ name: 'tiny', args: ['--model', STORIES_GGUF, '--no-mdns', '--memory-budget', '64K'] }),
    ]);
  }, 90_000);
  afterAll(() => h.cleanup());

  const post = async (path: string, body: string, headers: Record<string, string> = { 'x-api-key': KEY }): Promise<Answer> => {
    const res = await fetch(`${c.a.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text) as unknown };
  };
  const anthropic = (body: unknown) => post('/v1/messages', typeof body === 'string' ? body : JSON.stringify(body));
  const ollama = (path: string, body: unknown) => post(path, typeof body === 'string' ? body : JSON.stringify(body), { authorization: `Bearer ${KEY}` });
  const ok = { model: 'stories260K', max_tokens: 4, messages: [{ role: 'user', content: 'Hi' }] };

  /** Anthropic's shape exactly: { type: "error", error: { type, message } }; returns the message. */
  function anthropicError(a: Answer, status: number, type: string): string {
    expect(a.status).toBe(status);
    const b = a.body as { type: string; error: { type: string; message: string } };
    expect(Object.keys(b).sort()).toEqual(['error', 'type']);
    expect(b.type).toBe('error');
    expect(Object.keys(b.error).sort()).toEqual(['message', 'type']);
    expect(b.error.type).toBe(type);
    expect(b.error.message.length).toBeGreaterThan(10);
    return b.error.message;
  }

  /** Ollama's shape exactly: { error: "…" }; returns the message. */
  function ollamaError(a: Answer, status: number): string {
    expect(a.status).toBe(status);
    const b = a.body as { error: string };
    expect(Object.keys(b)).toEqual(['error']);
    expect(typeof b.error).toBe('string');
    expect(b.error.length).toBeGreaterThan(10);
    return b.error;
  }

  it('Anthropic: malformed JSON, missing max_tokens, unknown model, wrong types, a prompt over the context', async () => {
    expect(anthropicError(await anthropic('{"model": "stories260K", "max_tokens": 4,'), 400, 'invalid_request_error')).toContain('JSON');
    expect(anthropicError(await anthropic('[1, 2]'), 400, 'invalid_request_error')).toContain('object');
    expect(anthropicError(await anthropic({ ...ok, max_tokens: undefined }), 400, 'invalid_request_error')).toContain('max_tokens');
    expect(anthropicError(await anthropic({ ...ok, model: 'claude-3-haiku' }), 404, 'not_found_error')).toContain('claude-3-haiku');
    const wrong: [Record<string, unknown>, string][] = [
      [{ max_tokens: '10' }, 'max_tokens'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ messages: 'Hi' }, 'messages'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'system', content: 'x' }] }, 'role'],
      [{ messages: [{ role: 'user', content: [{ type: 'text' }] }] }, 'text'],
      [{ temperature: 5 }, 'temperature'],
      [{ top_k: 1.5 }, 'top_k'],
      [{ system: 5 }, 'system'],
      [{ stop_sequences: 'END' }, 'stop_sequences'],
      [{ stream: 'yes' }, 'stream'],
      [{ metadata: 'user-1' }, 'metadata'],
      [{ tools: [{ name: 'x' }] }, 'input_schema'],
      [{ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'server tool'],
      [{ tool_choice: { type: 'bogus' } }, 'tool_choice'],
      [{ tool_choice: { type: 'any' } }, 'tools'],
      [{ messages: [{ role: 'user', content: [{ type: 'tool_result' }] }] }, 'tool_use_id'],
      [{ thinking: { type: 'enabled', budget_tokens: 1024 } }, 'thinking'],
    ];
    for (const [patch, mention] of wrong) {
      const message = anthropicError(await anthropic({ ...ok, ...patch }), 400, 'invalid_request_error');
      expect(message, JSON.stringify(patch)).toContain(mention);
    }
    const long = { ...ok, messages: [{ role: 'user', content: 'Once upon a time there was a dog. '.repeat(40) }] };
    expect(anthropicError(await anthropic(long), 400, 'invalid_request_error')).toContain(`${CONTEXT}`);
    expect(anthropicError(await post('/v1/messages/count_tokens', '{"model":'), 400, 'invalid_request_error')).toContain('JSON');
    expect(anthropicError(await post('/v1/messages/count_tokens', JSON.stringify({ model: 'stories260K' })), 400, 'invalid_request_error')).toContain('messages');
  });

  it('Anthropic: a missing or wrong key is a 401 authentication_error; an oversized body a 413 request_too_large', async () => {
    anthropicError(await post('/v1/messages', JSON.stringify(ok), {}), 401, 'authentication_error');
    anthropicError(await post('/v1/messages', JSON.stringify(ok), { 'x-api-key': 'wrong' }), 401, 'authentication_error');
    const big = { ...ok, messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }] };
    expect(anthropicError(await anthropic(big), 413, 'request_too_large')).toContain('bytes');
  });

  it('Ollama: malformed JSON, unknown model, wrong types, num_ctx too large, oversized body, missing key', async () => {
    const chat = { model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 4 } };
    expect(ollamaError(await ollama('/api/chat', '{"model":'), 400)).toContain('JSON');
    expect(ollamaError(await ollama('/api/generate', 'not json'), 400)).toContain('JSON');
    expect(ollamaError(await ollama('/api/chat', { ...chat, model: 'llama3.2:1b' }), 404)).toContain('not found');
    expect(ollamaError(await ollama('/api/show', { model: 'mistral' }), 404)).toContain('mistral');
    expect(ollamaError(await ollama('/api/chat', { messages: chat.messages }), 400)).toContain('model');
    const wrong: [string, Record<string, unknown>, string][] = [
      ['/api/chat', { messages: 'Hi' }, 'messages'],
      ['/api/chat', { messages: [{ role: 'robot', content: 'x' }] }, 'role'],
      ['/api/chat', { messages: [{ role: 'user', content: 'x', images: ['iVBORw0KGgo='] }] }, 'images'],
      ['/api/chat', { stream: 'yes' }, 'stream'],
      ['/api/chat', { options: { temperature: 'hot' } }, 'options.temperature'],
      ['/api/chat', { options: { top_k: -1 } }, 'options.top_k'],
      ['/api/chat', { options: { num_predict: 0 } }, 'num_predict'],
      ['/api/chat', { options: { stop: 5 } }, 'options.stop'],
      ['/api/chat', { options: 'fast' }, 'options'],
      ['/api/chat', { format: 42 }, 'format'],
      ['/api/chat', { format: { type: 'string', pattern: '^a$' } }, 'pattern'],
      ['/api/chat', { keep_alive: { minutes: 5 } }, 'keep_alive'],
      ['/api/chat', { tools: [{ type: 'function', function: {} }] }, 'name'],
      ['/api/generate', { prompt: 5 }, 'prompt'],
      ['/api/generate', { prompt: 'x', suffix: 'y' }, 'suffix'],
      ['/api/generate', { prompt: 'x', context: ['a'] }, 'context'],
      ['/api/embed', { input: 5 }, 'input'],
    ];
    for (const [path, patch, mention] of wrong) {
      const base = path === '/api/chat' ? chat : path === '/api/embed' ? { model: 'stories260K' } : { model: 'stories260K', stream: false };
      const message = ollamaError(await ollama(path, { ...base, ...patch }), 400);
      expect(message, `${path} ${JSON.stringify(patch)}`).toContain(mention);
    }
    const ctx = ollamaError(await ollama('/api/chat', { ...chat, options: { num_ctx: CONTEXT * 2 } }), 400);
    expect(ctx).toContain('num_ctx');
    expect(ctx).toContain(String(CONTEXT));
    const tooLong = ollamaError(await ollama('/api/generate', { model: 'stories260K', prompt: 'dog '.repeat(100), stream: false, options: { num_ctx: 64 } }), 400);
    expect(tooLong).toContain('num_ctx');
    expect(ollamaError(await ollama('/api/chat', { ...chat, messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }] }), 413)).toContain('bytes');
    ollamaError(await post('/api/chat', JSON.stringify(chat), {}), 401);
  });

  it('a failure after the stream opened: Anthropic\'s error event, Ollama\'s last error line; 5xx in each shape when not streamed', async () => {
    const raw = await fetch(`${tiny.apiUrl}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...ok, stream: true }) });
    expect(raw.status).toBe(200);
    const text = await raw.text();
    expect([...text.matchAll(/^event: (\S+)$/gm)].map((x) => x[1])).toEqual(['message_start', 'error']);
    const event = JSON.parse(/^event: error\ndata: (.*)$/m.exec(text)![1]) as { type: string; error: { type: string; message: string } };
    expect(event.type).toBe('error');
    expect(event.error.type).toBe('api_error');
    expect(event.error.message).toContain('does not fit');
    // The SDK turns the event into an APIError.
    const sdk = new Anthropic({ baseURL: tiny.apiUrl, apiKey: 'x', maxRetries: 0 });
    await expect(sdk.messages.stream({ ...ok, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage()).rejects.toThrow(/does not fit/);
    const plainMessage = await fetch(`${tiny.apiUrl}/v1/messages`, { method: 'POST', body: JSON.stringify(ok) });
    anthropicError({ status: plainMessage.status, body: await plainMessage.json() }, 503, 'api_error');

    const ollama = new Ollama({ host: tiny.apiUrl });
    const consume = async () => {
      for await (const part of await ollama.chat({ model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], stream: true })) void part;
    };
    await expect(consume()).rejects.toThrow(/does not fit/);
    const plain = await fetch(`${tiny.apiUrl}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'stories260K', prompt: 'Hi', stream: false }) });
    expect(ollamaError({ status: plain.status, body: await plain.json() }, 503)).toContain('does not fit');
    expect((await fetch(`${tiny.apiUrl}/health`)).status).toBe(200);
  });

  it('the nodes are healthy afterwards, answered no 500, and serve every dialect', async () => {
    expect((await fetch(`${c.a.apiUrl}/health`)).status).toBe(200);
    const m = await anthropic(ok);
    expect(m.status).toBe(200);
    expect((m.body as { content: { text: string }[] }).content[0].text.length).toBeGreaterThan(0);
    const o = await ollama('/api/chat', { model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 4 } });
    expect(o.status).toBe(200);
    expect((o.body as { done: boolean }).done).toBe(true);
    for (const route of ['/v1/messages', '/v1/messages/count_tokens', '/api/chat', '/api/generate', '/api/show', '/api/embed']) {
      expect(await metric(c.a, `edge_node_http_requests_total{route="${route}",status="500"}`, KEY), route).toBe(0);
    }
    expect(await metric(c.a, 'edge_node_http_requests_total{route="/v1/messages",status="400"}', KEY)).toBeGreaterThanOrEqual(20);
  });
});
