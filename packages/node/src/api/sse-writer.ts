import type { ServerResponse } from 'node:http';
import { StreamedResponse } from './streamed-response.js';

/** Server-Sent Events as OpenAI streams them: `data: <json>\n\n` per event and `data: [DONE]` at the end. */
export class SseWriter extends StreamedResponse {
  constructor(res: ServerResponse) {
    super(res, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold tokens back in their buffers.
      'x-accel-buffering': 'no',
    });
  }

  send(data: unknown): void {
    this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** An event with a name (`event: NAME`), as the Responses API streams them. */
  sendEvent(event: string, data: unknown): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream with `data: [DONE]`. */
  done(): void {
    this.close('data: [DONE]\n\n');
  }

  /** Ends the stream without [DONE] (after an error event). */
  end(): void {
    if (this.open) this.res.end();
  }
}
