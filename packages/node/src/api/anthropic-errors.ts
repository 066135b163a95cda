import { randomUUID } from 'node:crypto';
import type { ErrorWriter } from './api-router.js';
import type { OpenAIError } from './openai-errors.js';

/** Anthropic's error `type` values. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error';

/** Anthropic's error body: `{ "type": "error", "error": { "type", "message" } }`. */
export interface AnthropicErrorBody {
  type: 'error';
  error: { type: AnthropicErrorType; message: string };
}

/** The Anthropic type for an HTTP status, as Anthropic's API pairs them. */
export function anthropicErrorType(status: number): AnthropicErrorType {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 529:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/**
 * The same error in Anthropic's shape. The message names the field at fault (OpenAI's `param`), since Anthropic's
 * body has no field for it and clients show only the message.
 */
export function anthropicErrorBody(e: OpenAIError): AnthropicErrorBody {
  const message = e.param && !e.message.includes(e.param.replace(/\.[A-Za-z_]+$/, '')) ? `${e.param}: ${e.message}` : e.message;
  return { type: 'error', error: { type: anthropicErrorType(e.status), message } };
}

/** Error writer for the Anthropic routes. */
export const anthropicErrors: ErrorWriter = (e) => ({ status: e.status, body: anthropicErrorBody(e), headers: { 'request-id': `req_${randomUUID().replaceAll('-', '')}` } });
