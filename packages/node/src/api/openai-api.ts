import { basename } from 'node:path';
import type { Generator } from '../engine/generator.js';
import { createApiKeyCheck } from './api-key-auth.js';
import type { ApiMetrics } from './api-metrics.js';
import { DEFAULT_QUEUE_LENGTH } from './api-defaults.js';
import type { ApiRouter } from './api-router.js';
import { addAnthropicMessagesRoutes } from './anthropic-messages-route.js';
import { addBenchRoute } from './bench-route.js';
import { addChatCompletionsRoute } from './chat-completions-route.js';
import { addCompletionsRoute } from './completions-route.js';
import { addEmbeddingsRoutes } from './embeddings-route.js';
import { addModelsRoutes } from './models-route.js';
import { addOllamaGenerationRoutes } from './ollama-generation-routes.js';
import { addOllamaModelRoutes } from './ollama-model-routes.js';
import { addResponsesRoute } from './responses-route.js';
import { RequestQueue } from './request-queue.js';
import type { ServingContext } from './serve-generation.js';
import { addWebPageRoutes } from './web-page.js';

export interface OpenAIApiOptions {
  /** What serves the model (a local model or the cluster's pipeline); null when the node has none. */
  generator: Generator | null;
  metrics: ApiMetrics;
  /** The model file or folder the id is derived from. */
  modelPath?: string;
  /** The id to serve the model as, when not the model file's name (a node serving its model from peers). */
  modelId?: string;
  /** Context limit per request (prompt + generated). */
  contextLength: number;
  /** Requests run in the pipeline together (the KV memory the plan reserves). */
  concurrency: number;
  queueLength?: number;
  /** When set, every route but `/`, the page's files and /health needs `Authorization: Bearer <key>`. */
  apiKey?: string;
  maxBodyBytes?: number;
  /** The cluster snapshot of GET /v1/cluster (serving stats are added to it). */
  clusterStatus: () => object;
  peers: () => number;
  nodeName: (peerId: string) => string;
}

/**
 * The id clients use as `model`: the file or folder name without extension ("stories260K"), because many
 * converted models carry a generic general.name such as "llama".
 */
export function modelIdFor(path: string): string {
  return basename(path.replace(/[/\\]+$/, '')).replace(/\.(gguf|safetensors)$/i, '');
}

/**
 * Adds the OpenAI-compatible API (chat, completions, models), /v1/cluster with live serving stats, /metrics and
 * the web page to a node's router.
 */
export function addOpenAIApi(router: ApiRouter, opts: OpenAIApiOptions): ServingContext {
  const queue = new RequestQueue(opts.concurrency, opts.queueLength ?? DEFAULT_QUEUE_LENGTH);
  const ctx: ServingContext = {
    generator: opts.generator,
    modelId: opts.generator ? (opts.modelId ?? modelIdFor(opts.modelPath ?? opts.generator.modelName)) : '',
    queue,
    metrics: opts.metrics,
    contextLength: opts.contextLength,
    ...(opts.modelPath !== undefined ? { modelPath: opts.modelPath } : {}),
  };
  const p = opts.generator;
  opts.metrics.attach({
    peers: opts.peers,
    kvSessions: () => p?.kvUsage().sessions ?? 0,
    kvCacheBytes: () => p?.kvUsage().bytes ?? 0,
    running: () => queue.runningCount,
    waiting: () => queue.waitingCount,
    slots: () => opts.concurrency,
    nodeName: opts.nodeName,
    prefixCache: () => p?.prefixCache?.() ?? null,
    speculation: () => p?.speculation?.() ?? null,
  });
  if (opts.apiKey !== undefined) router.setAuth(createApiKeyCheck(opts.apiKey));
  router.onResponse((route, status) => opts.metrics.httpRequests.inc({ route, status: String(status) }));

  addChatCompletionsRoute(router, ctx, opts.maxBodyBytes);
  addCompletionsRoute(router, ctx, opts.maxBodyBytes);
  addResponsesRoute(router, ctx, opts.maxBodyBytes);
  addModelsRoutes(router, ctx);
  addAnthropicMessagesRoutes(router, ctx, opts.maxBodyBytes);
  addOllamaGenerationRoutes(router, ctx, opts.maxBodyBytes);
  addEmbeddingsRoutes(router, ctx, opts.maxBodyBytes);
  addOllamaModelRoutes(router, ctx, { embeddings: true, ...(opts.maxBodyBytes !== undefined ? { maxBodyBytes: opts.maxBodyBytes } : {}) });
  addBenchRoute(router, ctx, opts.maxBodyBytes !== undefined ? { maxBodyBytes: opts.maxBodyBytes } : {});
  router.add('GET', '/v1/cluster', () => ({
    ...opts.clusterStatus(),
    model: p ? { id: ctx.modelId, name: p.config.name, layers: p.config.numLayers, contextLength: ctx.contextLength } : null,
    serving: opts.metrics.serving(),
  }));
  router.add('GET', '/metrics', async (_req, res) => {
    const text = await opts.metrics.render();
    res.writeHead(200, { 'content-type': opts.metrics.contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  addWebPageRoutes(router);
  return ctx;
}
