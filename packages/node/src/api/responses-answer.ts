import { randomUUID } from 'node:crypto';
import type { GenerationResult } from '../engine/generate.js';
import type { ResponsesRequest } from './responses-request.js';
import { requestedSpeculation } from './speculation-usage.js';
import type { ParsedToolCall } from './tool-calls.js';

const shortId = () => randomUUID().replaceAll('-', '');

/** A function call as the Responses API names it: the call id without its `call_` prefix, as `fc_…`. */
export const callItemId = (callId: string) => `fc_${callId.slice(5)}`;

/**
 * One Responses API answer's objects: the response (in progress, then final), its message item (one id, whether
 * streamed or not) and its function-call items. Responses are not stored, so every one says `store: false`.
 */
export class ResponsesAnswer {
  readonly id = `resp_${shortId()}`;
  readonly msgId = `msg_${shortId()}`;
  private readonly base: object;
  private readonly speculate: boolean | undefined;

  constructor(
    modelId: string,
    r: ResponsesRequest,
    /** The output follows a grammar, which ends it complete: a length finish then is not "incomplete". */
    private readonly constrained: boolean,
  ) {
    this.speculate = r.speculate;
    this.base = {
      id: this.id,
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      model: modelId,
      instructions: r.instructions,
      max_output_tokens: r.maxOutputTokens,
      temperature: r.sampling.temperature,
      top_p: r.sampling.topP,
      parallel_tool_calls: r.parallelToolCalls,
      tool_choice: r.choice.mode === 'named' ? { type: 'function', name: r.choice.name } : r.choice.mode,
      tools: r.tools.map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters, strict: t.strict })),
      text: { format: r.textFormat ?? { type: 'text' } },
      previous_response_id: null,
      reasoning: null,
      store: false,
      truncation: 'disabled',
      user: null,
      metadata: r.metadata,
      error: null,
    };
  }

  inProgress(): object {
    return { ...this.base, status: 'in_progress', incomplete_details: null, output: [], usage: null };
  }

  messageItem(text: string, status: string): object {
    return {
      type: 'message',
      id: this.msgId,
      status,
      role: 'assistant',
      content: status === 'in_progress' ? [] : [{ type: 'output_text', text, annotations: [], logprobs: [] }],
    };
  }

  callItem(c: Pick<ParsedToolCall, 'id' | 'name' | 'arguments'>, status: string): object {
    return { type: 'function_call', id: callItemId(c.id), call_id: c.id, name: c.name, arguments: status === 'in_progress' ? '' : c.arguments, status };
  }

  /** The finished response: its text (null: none was written) as a message item, then each call. */
  final(result: GenerationResult, content: string | null, calls: readonly ParsedToolCall[]): Record<string, unknown> & { status: 'completed' | 'incomplete' } {
    const output: object[] = [];
    if (content !== null && content !== '') output.push(this.messageItem(content, 'completed'));
    if (calls.length === 0 && output.length === 0) output.push(this.messageItem('', 'completed'));
    for (const c of calls) output.push(this.callItem(c, 'completed'));
    const incomplete = result.finishReason === 'length' && calls.length === 0 && !this.constrained;
    return {
      ...this.base,
      status: incomplete ? 'incomplete' : 'completed',
      incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
      output,
      usage: {
        input_tokens: result.promptTokens.length,
        input_tokens_details: { cached_tokens: result.cachedTokens ?? 0 },
        output_tokens: result.tokens.length,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: result.promptTokens.length + result.tokens.length,
        // edge-node's extension, when the request asked for speculation (`speculate: true`).
        ...requestedSpeculation(this.speculate, [result]),
      },
    };
  }
}
