import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/**
 * An HTTP answer written piece by piece (SSE, NDJSON): its headers go out once, before the first piece, and pieces
 * written after the client went away are dropped (the generation is being cancelled meanwhile).
 */
export class StreamedResponse {
  private started = false;

  constructor(
    protected readonly res: ServerResponse,
    private readonly headers: OutgoingHttpHeaders,
  ) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  /** Sends the headers now, so the client sees the stream open before the first token. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, this.headers);
    this.res.flushHeaders();
  }

  protected write(text: string): void {
    this.start();
    if (this.open) this.res.write(text);
  }

  /** Ends the answer, with `last` as its final piece. */
  protected close(last?: string): void {
    this.start();
    if (this.open) this.res.end(last);
  }
}
