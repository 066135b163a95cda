import type { ModelFile } from '../model/model-file.js';
import { ChatTemplate, type ChatMessage } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TrainingDataError, type TrainingExample } from './training-data.js';
import type { TrainSequence } from './transformer-grad.js';

/** A stretch of rendered text and whether the loss counts its tokens. */
interface Segment {
  text: string;
  counted: boolean;
}

/**
 * A chat rendered with the model's template, cut into stretches: each assistant turn (what the template writes from
 * the end of the prompt before it to the end of the turn, its end marker included) is counted, the rest is not. The
 * template must render earlier turns as a prefix of later ones (chat templates do; one that does not is refused).
 */
function chatSegments(messages: readonly ChatMessage[], template: ChatTemplate, fail: (why: string) => never): Segment[] {
  const full = template.render(messages, false);
  const segments: Segment[] = [];
  let at = 0;
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = template.render(messages.slice(0, i), true);
    const through = template.render(messages.slice(0, i + 1), false);
    if (!full.startsWith(through) || !through.startsWith(before) || before.length < at) {
      fail('the chat template does not render earlier turns as a prefix of later ones, so the assistant turns cannot be found');
    }
    if (before.length > at) segments.push({ text: full.slice(at, before.length), counted: false });
    segments.push({ text: full.slice(before.length, through.length), counted: true });
    at = through.length;
  });
  if (full.length > at) segments.push({ text: full.slice(at), counted: false });
  return segments;
}

/** Tokens of the segments in order (BOS as the model asks, once, at the start) and whether each is a counted target. */
function tokenise(segments: readonly Segment[], tokenizer: Tokenizer): { tokens: number[]; counted: boolean[] } {
  const tokens: number[] = [];
  const counted: boolean[] = [];
  segments.forEach((s, i) => {
    const ids = tokenizer.encode(s.text, i === 0 ? {} : { addBos: false });
    for (const id of ids) {
      tokens.push(id);
      counted.push(s.counted);
    }
  });
  return { tokens, counted };
}

/**
 * One example as a training sequence: text counts every token after the first; a chat counts its assistant turns.
 * Refused, with its line number, when it is longer than `maxTokens` or has no token to learn.
 */
export function exampleSequence(ex: TrainingExample, tokenizer: Tokenizer, template: ChatTemplate, maxTokens: number, file: string): TrainSequence {
  const fail = (why: string): never => {
    throw new TrainingDataError(file, ex.line, why);
  };
  const segments = ex.kind === 'text' ? [{ text: ex.text, counted: true }] : chatSegments(ex.messages, template, fail);
  const { tokens, counted } = tokenise(segments, tokenizer);
  if (tokens.length > maxTokens) fail(`${tokens.length} tokens, more than the ${maxTokens} a training sequence may have`);
  const lossMask = counted.slice(1);
  if (tokens.length < 2 || !lossMask.some(Boolean)) fail('no token to learn (the line tokenises to fewer than two tokens, or nothing of it counts)');
  return { tokens: Int32Array.from(tokens), lossMask };
}

/** Every example as a training sequence, rendered with the model's chat template (refused with the line's number). */
export function trainingSequences(examples: readonly TrainingExample[], model: Pick<ModelFile, 'chatTemplate' | 'config'>, tokenizer: Tokenizer, file: string): TrainSequence[] {
  const bos = tokenizer.bosId === null ? '' : tokenizer.tokenToPiece(tokenizer.bosId);
  const eos = tokenizer.eosIds.length > 0 ? tokenizer.tokenToPiece(tokenizer.eosIds[0]) : '';
  const template = new ChatTemplate(model.chatTemplate, bos, eos);
  return examples.map((ex) => exampleSequence(ex, tokenizer, template, model.config.contextLength, file));
}
