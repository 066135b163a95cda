import type { ApiRouter } from './api-router.js';
import { OpenAIError } from './openai-errors.js';
import type { ServingContext } from './serve-generation.js';

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  /** Extensions: what the model is and how much context a request gets. */
  name: string;
  architecture: string;
  context_length: number;
}

/** GET /v1/models (the one model this cluster serves, or none) and GET /v1/models/{id}. */
export function addModelsRoutes(router: ApiRouter, ctx: ServingContext): void {
  const created = Math.floor(Date.now() / 1000);
  const entries = (): ModelEntry[] => {
    const p = ctx.generator;
    if (!p) return [];
    const c = p.config;
    return [{ id: ctx.modelId, object: 'model', created, owned_by: 'edge-node', name: c.name, architecture: c.architecture, context_length: ctx.contextLength }];
  };
  router.add('GET', '/v1/models', () => ({ object: 'list', data: entries() }));
  router.add('GET', '/v1/models/:id', (_req, _res, { params }) => {
    const found = entries().find((m) => m.id === params.id || m.name === params.id);
    if (!found) throw new OpenAIError(404, `the model "${params.id}" does not exist here`, 'invalid_request_error', 'model_not_found', 'model');
    return found;
  });
}
