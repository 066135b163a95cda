/** OpenAI's error `type` values (the ones this API answers with). */
export type OpenAIErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error' | 'service_unavailable';

/** The body of every error answer: `{ "error": { message, type, param, code } }`, as OpenAI's API sends it. */
export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

/**
 * An error a route throws to answer with an HTTP status and OpenAI's error body. `param` names the request field at
 * fault (clients show it), `code` is a stable machine-readable reason.
 */
export class OpenAIError extends Error {
  override name = 'OpenAIError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: OpenAIErrorType,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  get body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: a field is missing, has the wrong type or an impossible value. */
export function invalidRequest(message: string, param: string | null = null, code: string | null = 'invalid_value'): OpenAIError {
  return new OpenAIError(400, message, 'invalid_request_error', code, param);
}

/** Maps errors of the engine and pipeline onto API errors; anything unknown is a 500 that keeps its message. */
export function toOpenAIError(err: unknown): OpenAIError {
  if (err instanceof OpenAIError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  switch (e.name) {
    case 'ContextLengthError':
      return new OpenAIError(400, e.message, 'invalid_request_error', 'context_length_exceeded', 'messages');
    case 'PromptError':
    case 'SamplingParamsError':
    case 'ChatTemplateError':
      return new OpenAIError(400, e.message, 'invalid_request_error', 'invalid_value');
    case 'ModelDoesNotFitError':
    case 'InsufficientMemoryError':
      return new OpenAIError(503, `the cluster cannot serve the model: ${e.message}`, 'service_unavailable', 'insufficient_memory');
    case 'ClusterNotReadyError':
    case 'StageLostError':
    case 'StageFailedError':
    case 'InvalidPlanError':
    case 'InvalidDevicesError':
    case 'LayerRangeError':
    case 'StageError':
    case 'RequestEndedError':
      return new OpenAIError(503, `the cluster could not serve this request: ${e.message}`, 'service_unavailable', 'cluster_unavailable');
    default:
      return new OpenAIError(500, `internal error: ${e.message}`, 'server_error', 'internal_error');
  }
}
