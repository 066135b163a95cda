import { DEFAULT_API_PORT } from '@edge-node/node/settings';

/** No node answered at the API URL, or it refused the request: the message says which and what to try. */
export class NodeApiError extends Error {
  override name = 'NodeApiError';
}

/**
 * How a command reaches a running node's HTTP API (`--api`, `--api-key`): the base URL without a trailing slash (the
 * node's default port on this machine unless given) and the headers that carry the key (else env EDGE_NODE_API_KEY).
 */
export interface NodeApi {
  base: string;
  headers: Record<string, string>;
}

export function nodeApi(api: string | undefined, apiKey: string | undefined): NodeApi {
  const key = apiKey ?? process.env.EDGE_NODE_API_KEY;
  return {
    base: (api ?? `http://127.0.0.1:${DEFAULT_API_PORT}`).replace(/\/$/, ''),
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
  };
}

/** GET a JSON document from the node within 5 s. */
export async function getFromNode(api: NodeApi, path: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${api.base}${path}`, { headers: api.headers, signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new NodeApiError(`no edge-node answers at ${api.base} (${(err as Error).cause ?? (err as Error).message}); is it running? pass --api with its API URL`);
  }
  if (!res.ok) throw new NodeApiError(`${api.base}${path} answered ${res.status}: ${await errorText(res)}`);
  return res.json();
}

/** An error answer's message: the OpenAI-style `error.message` when the body has one, else the body. */
export async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
  } catch {
    return text;
  }
}
