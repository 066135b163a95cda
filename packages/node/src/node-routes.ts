import type { ApiMetrics } from './api/api-metrics.js';
import { readJsonBody, type ApiRouter } from './api/api-router.js';
import { addFinetuneRoute } from './api/finetune-route.js';
import { addJoinPageRoutes } from './api/join-page.js';
import { addOpenAIApi } from './api/openai-api.js';
import { OpenAIError } from './api/openai-errors.js';
import type { EdgeNode } from './node-runtime.js';

/** What the API serves beside the node's parts: its metrics and the model's context and request slots. */
export interface NodeRouteOptions {
  metrics: ApiMetrics;
  contextLength: number;
  concurrency: number;
  /** From peers: the id the serving node gave in its manifest (the last segment of the peer model's path). */
  servedModelId?: string;
}

/** The node's HTTP routes: health, the memory budget, the OpenAI-compatible API and its dialects, the join page. */
export function addNodeRoutes(router: ApiRouter, node: EdgeNode, o: NodeRouteOptions): void {
  const { options, host, membership, watch } = node;
  router.add('GET', '/health', () => node.health(), { public: true });
  // The operator lowers (or restores, with null) the memory this node offers while it runs: it sheds layers.
  router.add('PUT', '/v1/node/memory-budget', async (req) => {
    const body = (await readJsonBody(req, 4096)) as { bytes?: unknown } | null;
    const bytes = body?.bytes;
    if (bytes !== null && (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0)) {
      throw new OpenAIError(400, 'send {"bytes": N} with N >= 0 (the memory this node may use), or {"bytes": null} for its start-up budget', 'invalid_request_error', 'invalid_memory_budget');
    }
    watch.setMemoryBudget(bytes);
    return { memoryBudgetBytes: watch.current().memoryBudgetBytes, reason: watch.current().memoryReason };
  });
  addOpenAIApi(router, {
    generator: node.pipeline,
    metrics: o.metrics,
    contextLength: o.contextLength,
    concurrency: o.concurrency,
    clusterStatus: () => node.status(),
    peers: () => membership.members().length,
    nodeName: (id) => (id === host.peerId ? options.name : (membership.members().find((m) => m.peerId === id)?.name ?? id.slice(-8))),
    ...(options.modelPath ? { modelPath: options.modelPath } : {}),
    ...(o.servedModelId !== undefined ? { modelId: o.servedModelId } : {}),
    ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
    ...(options.queueLength !== undefined ? { queueLength: options.queueLength } : {}),
  });
  // Fine-tuning through the cluster, the data staying on this node (docs/finetune.md).
  addFinetuneRoute(router, node.pipeline?.finetune ?? null);
  // GET /join: a browser tab joins as a node (packages/browser), dialing one of this node's WebSocket addresses.
  addJoinPageRoutes(router, {
    info: () => ({
      name: options.name,
      peerId: host.peerId,
      wsAddresses: host.addresses().filter((a) => /\/wss?\//.test(a)),
      clusterKeyRequired: options.clusterKey !== undefined,
    }),
    ...(options.joinAssets ? { assets: options.joinAssets } : {}),
  });
}
