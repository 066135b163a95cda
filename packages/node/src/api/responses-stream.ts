import type { ServerResponse } from 'node:http';
import type { AnswerOutcome, GenerationEvent } from './generation-events.js';
import type { OpenAIError } from './openai-errors.js';
import { callItemId, type ResponsesAnswer } from './responses-answer.js';
import { SseWriter } from './sse-writer.js';

/** The function call being streamed: its place among the output items and the argument text so far. */
interface OpenCall {
  outputIndex: number;
  itemId: string;
  id: string;
  name: string;
  args: string;
}

/**
 * A Responses API stream: typed, numbered events (`response.created` … `response.completed`), the shared answer's
 * events as Responses items — the message (opened by its first text), then each call.
 */
export class ResponsesStream {
  private readonly sse: SseWriter;
  private seq = 0;
  private opened = false;
  private closed = false;
  private text = '';
  private calls = 0;
  private call: OpenCall | null = null;

  constructor(
    res: ServerResponse,
    private readonly answer: ResponsesAnswer,
  ) {
    this.sse = new SseWriter(res);
  }

  private emit(type: string, data: object): void {
    this.sse.sendEvent(type, { type, sequence_number: this.seq++, ...data });
  }

  start(): void {
    const inProgress = this.answer.inProgress();
    this.emit('response.created', { response: inProgress });
    this.emit('response.in_progress', { response: inProgress });
  }

  event(e: GenerationEvent): void {
    if (e.type === 'text') {
      if (e.text === '') return;
      this.openMessage();
      this.text += e.text;
      this.emit('response.output_text.delta', { item_id: this.answer.msgId, output_index: 0, content_index: 0, delta: e.text, logprobs: [] });
    } else if (e.type === 'tool_call') {
      this.closeMessage();
      this.closeCall();
      this.call = { outputIndex: this.calls++ + (this.opened ? 1 : 0), itemId: callItemId(e.id), id: e.id, name: e.name, args: '' };
      this.emit('response.output_item.added', { output_index: this.call.outputIndex, item: this.answer.callItem({ id: e.id, name: e.name, arguments: '' }, 'in_progress') });
    } else if (this.call) {
      this.call.args += e.text;
      this.emit('response.function_call_arguments.delta', { item_id: this.call.itemId, output_index: this.call.outputIndex, delta: e.text });
    }
  }

  /** Closes what is open (an answer with no call has its message, if empty) and sends the final response. */
  finish(out: AnswerOutcome): void {
    this.closeCall();
    if (out.calls.length === 0) this.openMessage();
    this.closeMessage();
    const final = this.answer.final(out.result, this.opened ? this.text : null, out.calls);
    this.emit(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final });
    this.sse.end();
  }

  error(e: OpenAIError): void {
    this.emit('error', { code: e.body.error.code, message: e.body.error.message, param: e.body.error.param, error: e.body.error });
    this.sse.end();
  }

  private openMessage(): void {
    if (this.opened) return;
    this.opened = true;
    const msgId = this.answer.msgId;
    this.emit('response.output_item.added', { output_index: 0, item: this.answer.messageItem('', 'in_progress') });
    this.emit('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
  }

  private closeMessage(): void {
    if (!this.opened || this.closed) return;
    this.closed = true;
    const { msgId } = this.answer;
    const text = this.text;
    this.emit('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text, logprobs: [] });
    this.emit('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text, annotations: [], logprobs: [] } });
    this.emit('response.output_item.done', { output_index: 0, item: this.answer.messageItem(text, 'completed') });
  }

  private closeCall(): void {
    if (!this.call) return;
    const { id, name, args, itemId, outputIndex } = this.call;
    this.emit('response.function_call_arguments.done', { item_id: itemId, output_index: outputIndex, name, arguments: args });
    this.emit('response.output_item.done', { output_index: outputIndex, item: this.answer.callItem({ id, name, arguments: args }, 'completed') });
    this.call = null;
  }
}
