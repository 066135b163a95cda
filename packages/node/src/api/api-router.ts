import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error a handler throws to answer with a status code and `{ "error": message }`. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiRequestContext {
  url: URL;
}

/**
 * Handles one route. Return a value to answer 200 with it as JSON; or write to `res` yourself (streaming, SSE)
 * and return undefined.
 */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse, ctx: ApiRequestContext) => unknown | Promise<unknown>;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a JSON request body (up to `limitBytes`), answering 400/413 through HttpError. */
export async function readJsonBody(req: IncomingMessage, limitBytes = 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limitBytes) throw new HttpError(413, `request body larger than ${limitBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`);
  }
}

/** Exact-path routes keyed by method. Anyone holding the node can add routes (e.g. the OpenAI-style API). */
export class ApiRouter {
  private readonly routes = new Map<string, ApiHandler>();

  add(method: string, path: string, handler: ApiHandler): void {
    this.routes.set(`${method.toUpperCase()} ${path}`, handler);
  }

  has(method: string, path: string): boolean {
    return this.routes.has(`${method.toUpperCase()} ${path}`);
  }

  list(): string[] {
    return [...this.routes.keys()];
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const handler = this.routes.get(`${(req.method ?? 'GET').toUpperCase()} ${url.pathname}`);
    try {
      if (!handler) {
        const pathKnown = [...this.routes.keys()].some((k) => k.endsWith(` ${url.pathname}`));
        throw new HttpError(pathKnown ? 405 : 404, pathKnown ? `${req.method} is not allowed on ${url.pathname}` : `no route ${url.pathname}`);
      }
      const result = await handler(req, res, { url });
      if (result !== undefined && !res.headersSent) sendJson(res, 200, result);
      else if (!res.writableEnded && !res.headersSent) res.writeHead(204).end();
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (!res.headersSent) sendJson(res, status, { error: (err as Error).message });
      else res.end();
    }
  }
}
