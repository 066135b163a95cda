import { beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../src/model/open-model.js';
import { ChatTemplate } from '../src/tokenizer/chat-template.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { batchIndices } from '../src/training/batch-order.js';
import { parseTrainingJsonl, TrainingDataError } from '../src/training/training-data.js';
import { exampleSequence } from '../src/training/training-sequences.js';
import { STORIES_PATH } from './support/stories-model.js';

const CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

let tokenizer: Tokenizer;
beforeAll(async () => {
  const model = await openModel(STORIES_PATH);
  tokenizer = await loadTokenizer(model.tokenizer);
  await model.close();
});

function refusal(text: string): TrainingDataError {
  try {
    parseTrainingJsonl(text, 'data.jsonl');
  } catch (e) {
    if (e instanceof TrainingDataError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('fine-tuning data (JSONL)', () => {
  it('takes text and chat lines, skips blank ones', () => {
    const ex = parseTrainingJsonl('{"text": "Once upon a time"}\n\n{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n', 'd');
    expect(ex.map((e) => [e.kind, e.line])).toEqual([['text', 1], ['chat', 3]]);
  });

  it('refuses a bad line with its number and what is wrong', () => {
    const good = '{"text": "a"}\n';
    expect(refusal(good + '{"text": "b"\n').message).toMatch(/^data\.jsonl line 2: not JSON/);
    expect(refusal(good + good + '{"prompt": "x"}').message).toMatch(/line 3: expected \{"text"/);
    expect(refusal('[1, 2]').line).toBe(1);
    expect(refusal(good + '{"messages": [{"role": "user", "content": "hi"}]}').message).toMatch(/line 2: no assistant message/);
    expect(refusal('{"messages": [{"role": "robot", "content": "hi"}]}').message).toMatch(/role "robot"/);
    expect(refusal('{"text": "  "}').message).toMatch(/"text" is empty/);
    expect(refusal('\n\n').message).toMatch(/no examples/);
  });

  it('a text line counts every token after BOS', () => {
    const [ex] = parseTrainingJsonl('{"text": "Tom saw a cat."}', 'd');
    const seq = exampleSequence(ex, tokenizer, new ChatTemplate(null), 512, 'd');
    expect(Array.from(seq.tokens)).toEqual(tokenizer.encode('Tom saw a cat.'));
    expect(seq.lossMask.every(Boolean)).toBe(true);
  });

  it('a chat counts only the assistant turns, end marker included, through the template', () => {
    const line = JSON.stringify({ messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello there' }, { role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Good bye' }] });
    const [ex] = parseTrainingJsonl(line, 'd');
    const seq = exampleSequence(ex, tokenizer, new ChatTemplate(CHATML), 512, 'd');
    // The counted targets, decoded, are the two answers and their end markers.
    const counted = Array.from(seq.tokens.slice(1)).filter((_, i) => seq.lossMask[i]);
    const text = tokenizer.decode(counted, { showSpecial: true });
    expect(text.replace(/\s+/g, '')).toBe('Hellothere<|im_end|>Goodbye<|im_end|>'.replace(/\s+/g, ''));
    const fallback = exampleSequence(ex, tokenizer, new ChatTemplate(null), 512, 'd');
    expect(tokenizer.decode(Array.from(fallback.tokens.slice(1)).filter((_, i) => fallback.lossMask[i]))).toMatch(/Hello there.*Good bye/s);
  });

  it('refuses a sequence longer than the limit, with its line', () => {
    const [ex] = parseTrainingJsonl('\n{"text": "Tom saw a cat. The cat said moo."}', 'd');
    expect(() => exampleSequence(ex, tokenizer, new ChatTemplate(null), 5, 'd')).toThrow(/d line 2: \d+ tokens, more than the 5/);
  });

  it('batches: every example once per epoch, the same for the same seed, another order for another', () => {
    const epoch = Array.from({ length: 5 }, (_, s) => batchIndices(10, 2, s, 3)).flat();
    expect([...epoch].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batchIndices(10, 2, 7, 3)).toEqual(batchIndices(10, 2, 7, 3));
    expect(Array.from({ length: 5 }, (_, s) => batchIndices(10, 2, s, 4)).flat()).not.toEqual(epoch);
  });
});
