import type { ServerResponse } from 'node:http';

/**
 * Newline-delimited JSON, as Ollama streams: one object per line, flushed as written. Writes after the client went
 * away are dropped (the generation is being cancelled meanwhile).
 */
export class NdjsonWriter {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    this.res.flushHeaders();
  }

  send(value: unknown): void {
    this.start();
    if (this.open) this.res.write(`${JSON.stringify(value)}\n`);
  }

  end(value?: unknown): void {
    this.start();
    if (this.open) this.res.end(value === undefined ? undefined : `${JSON.stringify(value)}\n`);
  }
}
