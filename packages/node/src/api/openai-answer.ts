import { randomUUID } from 'node:crypto';
import type { GenerationResult } from '../engine/generate.js';
import type { Generator } from '../engine/generator.js';
import type { TokenLogprob } from '../engine/sampler.js';
import type { AnswerOutcome } from './generation-events.js';
import type { GenerationParams } from './openai-request.js';
import type { LlamaTimings } from './llama-timings.js';
import { speculationUsage, type SpeculationUsage } from './speculation-usage.js';

/** How a token looks in a logprobs entry: its text and its UTF-8 bytes. */
function tokenText(generator: Generator, id: number): { token: string; bytes: number[] } {
  const b = generator.vocabulary().bytes[id];
  if (b) return { token: Buffer.from(b).toString('utf8'), bytes: [...b] };
  const piece = generator.tokenizer.tokenToPiece(id);
  return { token: piece, bytes: [...Buffer.from(piece, 'utf8')] };
}

/** Chat's logprobs entries (`choices[].logprobs.content`). */
function chatLogprobs(generator: Generator, lps: readonly TokenLogprob[]): object[] {
  return lps.map((lp) => ({
    ...tokenText(generator, lp.token),
    logprob: lp.logprob,
    top_logprobs: lp.top.map((t) => ({ ...tokenText(generator, t.token), logprob: t.logprob })),
  }));
}

/** The legacy completions logprobs object. */
function completionLogprobs(generator: Generator, lps: readonly TokenLogprob[], startOffset: number): object {
  let offset = startOffset;
  const text_offset: number[] = [];
  const tokens = lps.map((lp) => {
    const t = tokenText(generator, lp.token).token;
    text_offset.push(offset);
    offset += t.length;
    return t;
  });
  return {
    tokens,
    token_logprobs: lps.map((lp) => lp.logprob),
    top_logprobs: lps.map((lp) => Object.fromEntries(lp.top.map((t) => [tokenText(generator, t.token).token, t.logprob]))),
    text_offset,
  };
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens the stages took from their prefix caches instead of computing them. */
  prompt_tokens_details: { cached_tokens: number };
  /**
   * With speculative decoding asked for (`speculate: true` or a `prediction`): drafted tokens the model accepted and
   * rejected (OpenAI's predicted-output fields), and edge-node's `speculation` extension with the decode's walks.
   */
  completion_tokens_details?: { accepted_prediction_tokens: number; rejected_prediction_tokens: number };
  speculation?: SpeculationUsage;
}

/** The usage fields of the answers' speculation (none when no choice speculated). */
function speculationFields(results: readonly GenerationResult[]): Pick<Usage, 'completion_tokens_details' | 'speculation'> {
  const s = speculationUsage(results);
  if (!s) return {};
  return { completion_tokens_details: { accepted_prediction_tokens: s.accepted_tokens, rejected_prediction_tokens: s.drafted_tokens - s.accepted_tokens }, speculation: s };
}

/**
 * One chat or completions request's answer in OpenAI's shapes: its stream chunks, logprobs and usage, and the whole
 * JSON answer. The request's choices share its id, creation time and usage.
 */
export class OpenAIAnswer {
  readonly id: string;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly chat: boolean,
    private readonly model: string,
    private readonly generator: Generator,
    private readonly params: GenerationParams,
    /** Log-probabilities with this many alternatives, when asked for. */
    private readonly logprobs: number | undefined,
  ) {
    this.id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  }

  chunk(index: number, delta: object | null, finish: string | null, extra: { text?: string; logprobs?: object | null } = {}): object {
    const { id, created, model } = this;
    const usage = this.params.includeUsage ? { usage: null } : {};
    return this.chat
      ? { id, object: 'chat.completion.chunk', created, model, system_fingerprint: null, choices: [{ index, delta: delta ?? {}, logprobs: extra.logprobs ?? null, finish_reason: finish }], ...usage }
      : { id, object: 'text_completion', created, model, choices: [{ index, text: extra.text ?? '', logprobs: extra.logprobs ?? null, finish_reason: finish }], ...usage };
  }

  /** A streamed piece's logprobs (null unless asked for); `offset`: the choice's text so far (completions' text_offset). */
  streamLogprobs(lps: readonly TokenLogprob[], offset: number): object | null {
    return this.logprobs === undefined || lps.length === 0 ? null : this.logprobsOf(lps, offset);
  }

  /** The closing chunk with the usage (and llama-server's timings when speculation ran), when the client asked for it (`stream_options.include_usage`). */
  usageChunk(usage: Usage, timings: { timings?: LlamaTimings } = {}): object | null {
    return this.params.includeUsage ? { ...this.chunk(0, null, null), choices: [], usage, ...timings } : null;
  }

  /** The choices share one prompt: its cached part is counted once, as its tokens are. */
  usage(promptTokens: number, results: readonly GenerationResult[]): Usage {
    const completion = results.reduce((a, r) => a + r.tokens.length, 0);
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
      prompt_tokens_details: { cached_tokens: results[0]?.cachedTokens ?? 0 },
      // Reported when the request asked for speculation (its counts vary run to run with the measured pass cost:
      // a client comparing usage of identical default requests sees identical objects); /metrics counts all.
      ...(this.params.speculate === true || this.params.prediction !== undefined ? speculationFields(results) : {}),
    };
  }

  /** The whole answer as JSON: each choice's text, or message with its tool calls. */
  completion(outs: readonly AnswerOutcome[], usage: Usage): object {
    const choices = outs.map(({ result, calls, content }, index) => {
      const lps = this.logprobs === undefined ? null : this.logprobsOf(result.logprobs ?? [], 0);
      if (!this.chat) return { index, text: result.text, logprobs: lps, finish_reason: result.finishReason };
      const message =
        calls.length > 0
          ? { role: 'assistant', content, refusal: null, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) }
          : { role: 'assistant', content: result.text, refusal: null };
      return { index, message, logprobs: lps, finish_reason: calls.length > 0 ? 'tool_calls' : result.finishReason };
    });
    const { id, created, model } = this;
    return { id, object: this.chat ? 'chat.completion' : 'text_completion', created, model, system_fingerprint: null, choices, usage };
  }

  private logprobsOf(lps: readonly TokenLogprob[], offset: number): object {
    return this.chat ? { content: chatLogprobs(this.generator, lps), refusal: null } : completionLogprobs(this.generator, lps, offset);
  }
}
