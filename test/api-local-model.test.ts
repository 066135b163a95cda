/**
 * A local model serves HTTP as a cluster does: the API server of `edge-node start`, built over a LocalModel (the
 * whole of stories260K on this device) instead of a ClusterPipeline, driven by the official `openai` client. Its
 * greedy answers, plain and streamed, are those of `edge-node run` and of the LocalExecutor for the same prompt.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiMetrics } from '../packages/node/src/api/api-metrics.js';
import { ApiRouter } from '../packages/node/src/api/api-router.js';
import { startApiServer, type ApiServer } from '../packages/node/src/api/api-server.js';
import { addOpenAIApi } from '../packages/node/src/api/openai-api.js';
import { LocalModel } from '../packages/node/src/engine/local-model.js';
import { GREEDY } from '../packages/node/src/engine/sampler.js';
import { renderFallbackChat, type ChatMessage } from '../packages/node/src/tokenizer/chat-template.js';
import { runSingleDevice, STORIES_GGUF } from './support/single-device-run.js';

const MESSAGES = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me about a dog.' },
] satisfies ChatMessage[];
const MAX_TOKENS = 30;

describe('a local model behind the HTTP API', () => {
  let local: LocalModel;
  let api: ApiServer;
  let client: OpenAI;
  beforeAll(async () => {
    local = await LocalModel.open(STORIES_GGUF, { threads: 1 });
    const router = new ApiRouter();
    addOpenAIApi(router, {
      generator: local,
      metrics: new ApiMetrics(),
      modelPath: STORIES_GGUF,
      contextLength: local.contextLength,
      concurrency: 2,
      clusterStatus: () => ({ self: 'local' }),
      peers: () => 0,
      nodeName: (id) => id,
    });
    api = await startApiServer(router, { port: 0 });
    client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  }, 60_000);
  afterAll(async () => {
    await api?.close();
    await local?.close();
  });

  let greedy: OpenAI.Chat.Completions.ChatCompletion;
  it('chat, greedy: the text of `edge-node run` and of the LocalExecutor for the same transcript', async () => {
    greedy = await client.chat.completions.create({ model: 'stories260K', messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0 });
    const content = greedy.choices[0].message.content!;
    expect(greedy.model).toBe('stories260K');
    expect(content.length).toBeGreaterThan(10);
    // stories260K has no chat template: the prompt is the plain transcript, and the answer stops before a next turn.
    const rendered = renderFallbackChat(MESSAGES);
    const direct = await local.generate({ prompt: rendered, maxTokens: MAX_TOKENS, sampling: { ...GREEDY }, stop: ['\nUser:'] });
    expect(content).toBe(direct.text);
    expect(greedy.choices[0].finish_reason).toBe(direct.finishReason);
    expect(greedy.usage).toEqual({ prompt_tokens: direct.promptTokens.length, completion_tokens: direct.tokens.length, total_tokens: direct.promptTokens.length + direct.tokens.length, prompt_tokens_details: { cached_tokens: 0 } });
    const run = await runSingleDevice(STORIES_GGUF, rendered, MAX_TOKENS, ['--stop', '\nUser:']);
    expect(content).toBe(run.text);
    expect(direct.tokens).toEqual(run.tokens);
  }, 120_000);

  it('chat, streamed: role first, the same text in several chunks, one finish_reason, usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'stories260K',
      messages: MESSAGES,
      max_tokens: MAX_TOKENS,
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
    expect(chunks.filter((ch) => ch.choices[0]?.finish_reason).map((ch) => ch.choices[0].finish_reason)).toEqual([greedy.choices[0].finish_reason]);
    expect(chunks.at(-1)!.usage).toEqual(greedy.usage);
  });

  it('lists the model, and the bench route says a local model cannot run it', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['stories260K']);
    const res = await fetch(`${api.url}/v1/edge-node/bench`);
    expect(res.status).toBe(501);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/cannot run bench/);
  });
});
