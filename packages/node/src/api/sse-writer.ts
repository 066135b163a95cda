import type { ServerResponse } from 'node:http';

/**
 * Server-Sent Events as OpenAI streams them: `data: <json>\n\n` per event and `data: [DONE]` at the end.
 * Writes after the client went away are dropped (the generation is being cancelled meanwhile).
 */
export class SseWriter {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /** Sends the headers now, so the client sees the stream open before the first token. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold tokens back in their buffers.
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  send(data: unknown): void {
    this.start();
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** An event with a name (`event: NAME`), as the Responses API streams them. */
  sendEvent(event: string, data: unknown): void {
    this.start();
    if (this.open) this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream with `data: [DONE]`. */
  done(): void {
    this.start();
    if (this.open) this.res.end('data: [DONE]\n\n');
  }

  /** Ends the stream without [DONE] (after an error event). */
  end(): void {
    if (this.open) this.res.end();
  }
}
