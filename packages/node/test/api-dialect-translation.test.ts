/**
 * The dialects' translations where a live model cannot show them: Anthropic's `end_turn` (stories260K never ends a
 * turn by itself within its context), tool turns mapped onto the shared conversation, Ollama's option defaults and
 * limits. The cluster tests (test/api-anthropic, api-ollama) drive everything else through the official clients.
 */
import { describe, expect, it } from 'vitest';
import type { GenerationResult } from '../src/engine/generate.js';
import { anthropicStopReason } from '../src/api/anthropic-messages-route.js';
import { parseAnthropicMessages, parseAnthropicToolChoice, toolUseId } from '../src/api/anthropic-request.js';
import { parseOllamaMessages, parseOllamaOptions } from '../src/api/ollama-request.js';
import { OpenAIError } from '../src/api/openai-errors.js';
import { callAsText, toolInput } from '../src/api/tool-input.js';

const result = (finishReason: 'stop' | 'length', stopString?: string): { result: GenerationResult } => ({
  result: {
    text: 'x',
    tokens: [1],
    promptTokens: [1],
    finishReason,
    timings: { ttftMs: 1, prefillMs: 1, prefillTokPerS: 1, decodeMs: 1, decodeTokPerS: 1, totalMs: 2 },
    ...(stopString !== undefined ? { stopString } : {}),
  },
});

describe('Anthropic translation', () => {
  it('stop_reason: end_turn for EOS and for the transcript\'s own stop, stop_sequence only for the client\'s', () => {
    const client = { stopSequences: ['END'] };
    expect(anthropicStopReason(result('stop'), client, false)).toEqual({ stop_reason: 'end_turn', stop_sequence: null });
    expect(anthropicStopReason(result('stop', '\nUser:'), client, false)).toEqual({ stop_reason: 'end_turn', stop_sequence: null });
    expect(anthropicStopReason(result('stop', 'END'), client, false)).toEqual({ stop_reason: 'stop_sequence', stop_sequence: 'END' });
    expect(anthropicStopReason(result('length'), client, false)).toEqual({ stop_reason: 'max_tokens', stop_sequence: null });
    expect(anthropicStopReason(result('stop'), client, true)).toEqual({ stop_reason: 'tool_use', stop_sequence: null });
  });

  it('tool_use and tool_result blocks become the shared tool calls and tool turns; a last assistant turn is a prefill', () => {
    const { messages, prefill } = parseAnthropicMessages([
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [{ type: 'text', text: 'Let me look.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '21 degrees' }] }, { type: 'text', text: 'And tomorrow?' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Paris', day: 1 } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'no data', is_error: true }] },
      { role: 'assistant', content: 'It will be ' },
    ]);
    expect(messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: '21 degrees', tool_call_id: 'toolu_1', name: 'get_weather' },
      { role: 'user', content: 'And tomorrow?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'toolu_2', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', day: 1 } } }] },
      { role: 'tool', content: 'Error: no data', tool_call_id: 'toolu_2', name: 'get_weather' },
    ]);
    expect(prefill).toBe('It will be');
    expect(toolUseId('call_abc')).toBe('toolu_abc');
  });

  it('tool_choice maps onto the shared choices; a named tool must be offered', () => {
    const tools = [{ name: 'a', parameters: { type: 'object' }, strict: true }];
    expect(parseAnthropicToolChoice({ type: 'any' }, tools)).toEqual({ mode: 'required' });
    expect(parseAnthropicToolChoice({ type: 'tool', name: 'a' }, tools)).toEqual({ mode: 'named', name: 'a' });
    expect(parseAnthropicToolChoice(undefined, tools)).toEqual({ mode: 'auto' });
    expect(parseAnthropicToolChoice({ type: 'none' }, tools)).toEqual({ mode: 'none' });
    expect(() => parseAnthropicToolChoice({ type: 'tool', name: 'b' }, tools)).toThrow(/"b"/);
  });
});

describe('tool inputs for the dialects that send objects', () => {
  const tools = [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false }, strict: true }];
  it('a call becomes an input object only when it parses to an object that validates; otherwise it stays text', () => {
    expect(toolInput({ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }, tools)).toEqual({ city: 'Paris' });
    expect(toolInput({ id: 'call_1', name: 'get_weather', arguments: '{"town":"Paris"}' }, tools)).toBeNull();
    expect(toolInput({ id: 'call_1', name: 'get_weather', arguments: '"Paris"' }, tools)).toBeNull();
    expect(toolInput({ id: 'call_1', name: 'get_weather', arguments: '{"city":' }, tools)).toBeNull();
    expect(toolInput({ id: 'call_1', name: 'other', arguments: '{}' }, tools)).toBeNull();
    expect(callAsText({ id: 'call_1', name: 'get_weather', arguments: '{"town":"Paris"}' })).toBe('<tool_call>\n{"name":"get_weather","arguments":{"town":"Paris"}}\n</tool_call>');
  });
});

describe('Ollama translation', () => {
  it('options: Ollama\'s defaults, seed -1 is random, num_predict -1 is "until the context is full"', () => {
    const o = parseOllamaOptions(undefined, 2048);
    expect(o.sampling).toMatchObject({ temperature: 0.8, topK: 40, topP: 0.9, minP: 0, repetitionPenalty: 1.1, penaltyLastN: 64, seed: null });
    expect(o.maxTokens).toBeNull();
    expect(o.numCtx).toBeNull();
    const set = parseOllamaOptions({ temperature: 0, seed: 3, num_predict: 12, num_ctx: 512, stop: ['\n', ''], repeat_last_n: 0 }, 2048);
    expect(set.sampling).toMatchObject({ temperature: 0, seed: 3, penaltyLastN: 0 });
    expect(set.maxTokens).toBe(12);
    expect(set.numCtx).toBe(512);
    expect(set.stop).toEqual(['\n']);
    expect(parseOllamaOptions({ seed: -1 }, 2048).sampling.seed).toBeNull();
  });

  it('num_ctx above the model\'s context is a 400 that names both numbers', () => {
    try {
      parseOllamaOptions({ num_ctx: 4096 }, 2048);
      throw new Error('expected a 400');
    } catch (err) {
      expect(err).toBeInstanceOf(OpenAIError);
      expect((err as OpenAIError).status).toBe(400);
      expect((err as OpenAIError).message).toMatch(/4096.*2048/);
      expect((err as OpenAIError).param).toBe('options.num_ctx');
    }
  });

  it('messages: calls get ids, a tool turn answers the latest call of its tool', () => {
    const m = parseOllamaMessages([
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }, { function: { name: 'add', arguments: { a: 1, b: 2 } } }] },
      { role: 'tool', content: '3', tool_name: 'add' },
      { role: 'tool', content: 'sunny', tool_name: 'get_weather' },
    ]);
    const ids = m[1].tool_calls!.map((c) => c.id);
    expect(new Set(ids).size).toBe(2);
    expect(m[2]).toEqual({ role: 'tool', content: '3', name: 'add', tool_call_id: ids[1] });
    expect(m[3]).toEqual({ role: 'tool', content: 'sunny', name: 'get_weather', tool_call_id: ids[0] });
  });
});
