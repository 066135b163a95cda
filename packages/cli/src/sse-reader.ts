import { createParser } from 'eventsource-parser';

/**
 * Reads a Server-Sent Events body as OpenAI streams it: yields each event's `data` as JSON until `data: [DONE]`.
 * Parsing the SSE framing (CRLF, multi-line data, comments, events split across chunks) is eventsource-parser's job.
 */
export async function* readSseData(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const ready: string[] = [];
  const parser = createParser({ onEvent: (event) => ready.push(event.data) });
  const decoder = new TextDecoder();
  for await (const bytes of body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(bytes, { stream: true }));
    while (ready.length > 0) {
      const data = ready.shift()!;
      if (data === '[DONE]') return;
      yield JSON.parse(data);
    }
  }
}
