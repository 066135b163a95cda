import type { ErrorWriter } from './api-router.js';
import { OpenAIError } from './openai-errors.js';

/** Ollama's error body: `{ "error": "…" }`. */
export interface OllamaErrorBody {
  error: string;
}

/**
 * Errors of the Ollama routes as Ollama writes them: `{"error": "…"}` with the status (400 bad input, 404 unknown
 * model, 413, 429, 500/503). The message names the field at fault, since the body has no other place for it.
 */
export const ollamaErrors: ErrorWriter = (e) => ({ status: e.status, body: ollamaErrorBody(e) });

export function ollamaErrorBody(e: OpenAIError): OllamaErrorBody {
  return { error: e.param && !e.message.includes(e.param.replace(/\.[A-Za-z_]+$/, '')) ? `${e.param}: ${e.message}` : e.message };
}

/** Ollama's 404 for a model it does not have (its clients match on "not found"). */
export function ollamaModelNotFound(model: string, served: string): OpenAIError {
  return new OpenAIError(404, `model "${model}" not found: this cluster serves "${served}"`, 'invalid_request_error', 'model_not_found', 'model');
}
