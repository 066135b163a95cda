import type { GenerationResult } from '../engine/generate.js';
import type { Generator } from '../engine/generator.js';
import type { SamplingParams, TokenLogprob } from '../engine/sampler.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import { ForcedCallStreamer, newCallId, parseToolCalls, ToolCallStreamFilter, type ParsedToolCall, type ToolCallFormat, type ToolChoice, type ToolDef } from './tool-calls.js';

/**
 * What one generated answer streams, whatever the dialect that writes it out: text, and tool calls as they become
 * known. Each HTTP dialect (OpenAI chat and completions, Anthropic Messages, Ollama) only translates these events
 * into its own wire format; the generation, tool-call reading and forced-call streaming live here once.
 */
export type GenerationEvent =
  /** Answer text (never part of a tool call) with the log-probabilities of the tokens that made it, when asked. */
  | { type: 'text'; text: string; logprobs: TokenLogprob[] }
  /** A tool call starts: its name is known. */
  | { type: 'tool_call'; index: number; id: string; name: string }
  /** More of a call's argument text (JSON); all of a call's pieces joined are its `arguments`. */
  | { type: 'tool_arguments'; index: number; text: string };

/** One answer as the pipeline generates it: the prompt already tokenized and checked. */
export interface AnswerJob {
  promptTokens: number[];
  maxTokens: number;
  sampling: SamplingParams;
  stop: string[];
  ignoreEos?: boolean;
  requestId: string;
  signal: AbortSignal;
  grammar?: GrammarSpec | null;
  logprobs?: number;
  /** The tools offered (chat dialects): calls are read out of the answer. */
  tools?: { defs: ToolDef[]; choice: ToolChoice; format: ToolCallFormat };
  /** false: compute the whole prompt even where the stages' prefix caches hold some of it. Default true. */
  prefixCache?: boolean;
  /** Speculative decoding for this answer (absent: the node's default). */
  speculate?: boolean;
  /** The output expected (token ids): drafts come from it first. */
  prediction?: number[];
}

export type AnswerFinish = 'stop' | 'length' | 'tool_calls';

export interface AnswerOutcome {
  result: GenerationResult;
  calls: ParsedToolCall[];
  /** The text that is not a tool call (null: only calls). */
  content: string | null;
  finish: AnswerFinish;
  /** Log-probabilities not yet carried by a text event (a forced call's tokens, the held-back tail). */
  trailingLogprobs: TokenLogprob[];
}

/** Argument text of a held-back call is sent in pieces of this many characters, as OpenAI streams them. */
const ARGUMENT_PIECE = 24;

/**
 * Generates one answer. With `onEvent` it streams: text as it becomes final; a **forced** call (tool_choice
 * required / named, whose frame the grammar fixes) live, its name once written and then its argument text; with
 * `auto`, text until a call starts, and the held-back call at the end, in pieces. Without `onEvent` nothing streams
 * and the outcome carries everything.
 */
export async function generateAnswer(generator: Generator, job: AnswerJob, onEvent: ((e: GenerationEvent) => void) | null): Promise<AnswerOutcome> {
  const tools = job.tools && job.tools.choice.mode !== 'none' ? job.tools.defs : [];
  const forcedMode = job.tools && (job.tools.choice.mode === 'required' || job.tools.choice.mode === 'named');
  const forced = forcedMode && job.tools ? new ForcedCallStreamer(job.tools.format) : null;
  const filter = tools.length > 0 && !forced ? new ToolCallStreamFilter() : null;
  const forcedId = newCallId();
  const pending: TokenLogprob[] = [];

  const sendText = (text: string) => {
    if (!onEvent || text === '') return;
    onEvent({ type: 'text', text, logprobs: pending.splice(0) });
  };
  const sendForced = (delta: string) => {
    if (!onEvent || !forced) return;
    const { name, args } = forced.push(delta);
    if (name !== undefined) onEvent({ type: 'tool_call', index: 0, id: forcedId, name });
    if (args) onEvent({ type: 'tool_arguments', index: 0, text: args });
  };

  const result = await generator.generate({
    prompt: job.promptTokens,
    maxTokens: job.maxTokens,
    sampling: job.sampling,
    stop: job.stop,
    ignoreEos: job.ignoreEos ?? false,
    signal: job.signal,
    requestId: job.requestId,
    ...(job.grammar ? { grammar: job.grammar } : {}),
    ...(job.logprobs !== undefined ? { logprobs: job.logprobs } : {}),
    ...(job.prefixCache === false ? { prefixCache: false } : {}),
    ...(job.speculate !== undefined ? { speculate: job.speculate } : {}),
    ...(job.prediction ? { prediction: job.prediction } : {}),
    ...(onEvent
      ? {
          onToken: (_t: number, lp: TokenLogprob | null) => {
            if (lp) pending.push(lp);
          },
          onText: (delta: string) => (forced ? sendForced(delta) : sendText(filter ? filter.push(delta) : delta)),
        }
      : {}),
  });

  let calls: ParsedToolCall[] = [];
  let content: string | null = result.text;
  if (tools.length > 0) ({ calls, content } = parseToolCalls(result.text, tools));
  if (forced && calls.length === 1) calls[0].id = forcedId;
  if (onEvent) {
    if (forced && calls.length === 1) {
      // The rest of the arguments (the grammar guarantees the streamed part is their beginning).
      if (!forced.started) onEvent({ type: 'tool_call', index: 0, id: forcedId, name: calls[0].name });
      const rest = calls[0].arguments.slice(forced.streamed.length);
      if (rest) onEvent({ type: 'tool_arguments', index: 0, text: rest });
    } else if (filter) {
      const held = filter.flush();
      const parsed = parseToolCalls(held, tools);
      if (parsed.calls.length === 0) sendText(held);
      else {
        if (parsed.content) sendText(parsed.content);
        parsed.calls.forEach((c, k) => {
          onEvent({ type: 'tool_call', index: k, id: c.id, name: c.name });
          for (let i = 0; i < c.arguments.length; i += ARGUMENT_PIECE) onEvent({ type: 'tool_arguments', index: k, text: c.arguments.slice(i, i + ARGUMENT_PIECE) });
        });
        calls = parsed.calls;
      }
    }
  }
  return { result, calls, content, finish: calls.length > 0 ? 'tool_calls' : result.finishReason, trailingLogprobs: pending.splice(0) };
}
