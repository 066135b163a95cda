import type { ServerResponse } from 'node:http';
import { StreamedResponse } from './streamed-response.js';

/** Newline-delimited JSON, as Ollama streams: one object per line, flushed as written. */
export class NdjsonWriter extends StreamedResponse {
  constructor(res: ServerResponse) {
    super(res, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  }

  send(value: unknown): void {
    this.write(`${JSON.stringify(value)}\n`);
  }

  end(value?: unknown): void {
    this.close(value === undefined ? undefined : `${JSON.stringify(value)}\n`);
  }
}
