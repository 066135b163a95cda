import { randomUUID } from 'node:crypto';
import type { EmbedOptions } from './generator.js';
import { GREEDY } from './sampler.js';
import type { ExecutionRequest } from './token-executor.js';

/** An embedding as an executor request: the prompt only, a cache of exactly its length, nothing sampled. */
export function embeddingRequest(opts: EmbedOptions): ExecutionRequest {
  return {
    id: opts.requestId ?? `emb-${randomUUID()}`,
    promptTokens: opts.tokens,
    // Travels with the opening like any request's; the last stage of an embedding has no sampler.
    sampling: GREEDY,
    contextLength: opts.tokens.length,
    embed: true,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}
