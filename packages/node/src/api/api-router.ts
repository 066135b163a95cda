import type { IncomingMessage, ServerResponse } from 'node:http';
import { OpenAIError, toOpenAIError } from './openai-errors.js';

export interface ApiRequestContext {
  url: URL;
  /** Values of the route's `:name` segments. */
  params: Record<string, string>;
}

/**
 * Handles one route. Return a value to answer 200 with it as JSON; or write to `res` yourself (streaming, SSE)
 * and return undefined. Throw an OpenAIError to answer with its status and OpenAI's error body.
 */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse, ctx: ApiRequestContext) => unknown | Promise<unknown>;

/** How a route's dialect writes an error: its status, body and headers (default: OpenAI's shape). */
export type ErrorWriter = (e: OpenAIError) => { status: number; body: unknown; headers?: Record<string, string> };

export interface RouteOptions {
  /** Served without the API key (the web page, /health). */
  public?: boolean;
  /** Errors of this route (bad input, auth, failures) in its dialect's shape (Anthropic, Ollama). */
  errors?: ErrorWriter;
}

/** Throws a 401 OpenAIError when the request may not use non-public routes. */
export type AuthCheck = (req: IncomingMessage) => void;

/** Called once per answered request with the route pattern (or "unmatched") and the status. */
export type ResponseObserver = (route: string, status: number, req: IncomingMessage) => void;

/** Default largest request body: a prompt this long is far beyond any context this runtime serves. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  writeJson(res, status, JSON.stringify(body, null, 2), headers);
}

/** A generated answer (200) as compact JSON, as the dialects' own servers send theirs. */
export function sendAnswer(res: ServerResponse, body: unknown, headers: Record<string, string> = {}): void {
  writeJson(res, 200, JSON.stringify(body), headers);
}

function writeJson(res: ServerResponse, status: number, text: string, headers: Record<string, string>): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Reads a JSON request body of at most `limitBytes`: 413 beyond that, 400 when it is not JSON. An oversized body
 * is read to its end (up to 16× the limit) before answering, because a client still sending would otherwise see
 * a connection reset instead of the 413.
 */
export async function readJsonBody(req: IncomingMessage, limitBytes = DEFAULT_MAX_BODY_BYTES): Promise<unknown> {
  const tooLarge = () =>
    new OpenAIError(413, `the request body is larger than ${limitBytes} bytes; send a shorter prompt`, 'invalid_request_error', 'request_too_large');
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limitBytes) {
      over = true;
      chunks.length = 0;
      if (size > limitBytes * 16) {
        req.destroy();
        break;
      }
      continue;
    }
    chunks.push(chunk as Buffer);
  }
  if (over) throw tooLarge();
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new OpenAIError(400, 'the request body is empty; send a JSON object', 'invalid_request_error', 'invalid_json');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new OpenAIError(400, `the request body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', 'invalid_json');
  }
}

interface Route {
  method: string;
  pattern: string;
  segments: string[];
  handler: ApiHandler;
  public: boolean;
  errors: ErrorWriter | null;
}

/**
 * Routes by method and path; a path segment `:name` matches any one segment. Errors are answered in OpenAI's shape,
 * and anything unexpected becomes a 500 without taking the node down.
 */
export class ApiRouter {
  private readonly routes: Route[] = [];
  private auth: AuthCheck | null = null;
  private readonly observers: ResponseObserver[] = [];

  /** Adds a route; adding the same method and pattern again replaces the earlier handler. */
  add(method: string, path: string, handler: ApiHandler, options: RouteOptions = {}): void {
    const m = method.toUpperCase();
    const route: Route = { method: m, pattern: path, segments: path.split('/'), handler, public: options.public ?? false, errors: options.errors ?? null };
    const at = this.routes.findIndex((r) => r.method === m && r.pattern === path);
    if (at >= 0) this.routes[at] = route;
    else this.routes.push(route);
  }

  has(method: string, path: string): boolean {
    return this.match(method.toUpperCase(), path) !== null;
  }

  list(): string[] {
    return this.routes.map((r) => `${r.method} ${r.pattern}`);
  }

  /** Requires `check` to pass for every route not added as public. */
  setAuth(check: AuthCheck | null): void {
    this.auth = check;
  }

  onResponse(observer: ResponseObserver): void {
    this.observers.push(observer);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let label = 'unmatched';
    let errors: ErrorWriter | null = null;
    res.once('close', () => {
      for (const o of this.observers) o(label, res.statusCode, req);
    });
    try {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        throw new OpenAIError(400, `cannot parse the request path ${JSON.stringify(req.url)}`, 'invalid_request_error', 'invalid_path');
      }
      const method = (req.method ?? 'GET').toUpperCase();
      const found = this.match(method, url.pathname);
      if (!found) {
        const pathKnown = this.routes.some((r) => matchSegments(r.segments, url.pathname) !== null);
        if (pathKnown) throw new OpenAIError(405, `${method} is not allowed on ${url.pathname}`, 'invalid_request_error', 'method_not_allowed');
        throw new OpenAIError(404, `no route ${method} ${url.pathname}`, 'invalid_request_error', 'unknown_url');
      }
      label = found.route.pattern;
      errors = found.route.errors;
      if (!found.route.public && this.auth) this.auth(req);
      const result = await found.route.handler(req, res, { url, params: found.params });
      if (result !== undefined && !res.headersSent) sendJson(res, 200, result);
      else if (!res.writableEnded && !res.headersSent) res.writeHead(204).end();
    } catch (err) {
      const e = toOpenAIError(err);
      if (!res.headersSent) {
        if (errors) {
          const w = errors(e);
          sendJson(res, w.status, w.body, w.headers ?? {});
        } else sendJson(res, e.status, e.body, e.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      }
      else if (!res.writableEnded) res.end();
    }
  }

  private match(method: string, path: string): { route: Route; params: Record<string, string> } | null {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const params = matchSegments(route.segments, path);
      if (params) return { route, params };
    }
    return null;
  }
}

function matchSegments(segments: string[], path: string): Record<string, string> | null {
  const parts = path.split('/');
  if (parts.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const s = segments[i];
    if (s.startsWith(':')) {
      if (parts[i] === '') return null;
      try {
        params[s.slice(1)] = decodeURIComponent(parts[i]);
      } catch {
        return null;
      }
    } else if (s !== parts[i]) return null;
  }
  return params;
}
