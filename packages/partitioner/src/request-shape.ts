/** The workload a plan is made for. */
export interface RequestShape {
  promptTokens: number;
  genTokens: number;
  /** Context to reserve KV cache for, per request. Default: promptTokens + genTokens. */
  contextTokens?: number;
  /** Requests in flight at once. Default 1. */
  concurrency?: number;
}

export type FullRequestShape = Required<RequestShape>;

export function normalizeRequest(r: RequestShape): FullRequestShape {
  const promptTokens = Math.max(1, Math.floor(r.promptTokens));
  const genTokens = Math.max(1, Math.floor(r.genTokens));
  const contextTokens = Math.max(promptTokens + genTokens, Math.floor(r.contextTokens ?? 0));
  const concurrency = Math.max(1, Math.floor(r.concurrency ?? 1));
  return { promptTokens, genTokens, contextTokens, concurrency };
}
