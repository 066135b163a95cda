import { FINETUNE_DEFAULTS, FinetuneBusyError, FinetuneMemoryError, FinetuneOptionError, type FinetuneJobRequest, type FinetuneRunner, type PreparedFinetune } from '../training/finetune-request.js';
import { TrainingDataError } from '../training/training-data.js';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { NdjsonWriter } from './ndjson-writer.js';
import { OpenAIError } from './openai-errors.js';

/** The largest training data a request may carry. */
const MAX_FINETUNE_BODY_BYTES = 64 * 2 ** 20;

function bad(message: string, code = 'invalid_finetune_request'): OpenAIError {
  return new OpenAIError(400, message, 'invalid_request_error', code);
}

/** The request body: the data as JSONL text (`data`) or its lines (`lines`), the options (defaults as the command's). */
export function parseFinetuneBody(body: unknown): FinetuneJobRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('send a JSON object: {"data": "<JSONL text>", "rank": 8, "steps": 100, …}');
  const b = body as Record<string, unknown>;
  let data: string;
  if (typeof b.data === 'string') data = b.data;
  else if (Array.isArray(b.lines) && b.lines.every((l) => typeof l === 'string')) data = b.lines.join('\n');
  else throw bad('"data" (the JSONL text) or "lines" (its lines, as strings) is required');
  const num = (key: keyof typeof FINETUNE_DEFAULTS): number => {
    const v = b[key];
    if (v === undefined) return FINETUNE_DEFAULTS[key];
    if (typeof v !== 'number') throw bad(`"${key}" must be a number`);
    return v;
  };
  const source = typeof b.source === 'string' && b.source.length > 0 && b.source.length <= 200 ? b.source : 'data';
  return { data, source, rank: num('rank'), alpha: num('alpha'), lr: num('lr'), steps: num('steps'), batch: num('batch'), seed: num('seed'), recoveries: num('recoveries') };
}

/**
 * `POST /v1/edge-node/finetune`: trains a LoRA adapter on this node's cluster with the data in the body, which stays
 * on this node (docs/finetune.md). A bad line or option, or a job that does not fit a node's memory, is a 400 (with the
 * line's number; with the node and by how much) before anything starts; a job
 * already running a 409. Then NDJSON: a `progress` line per step (loss, tokens/s, ETA), a `notice` when a stage was
 * lost and the job goes on without it, and a last line `done` with
 * the losses and the adapter (llama.cpp's LoRA GGUF, base64) or `error` with what failed (a lost stage is named).
 */
export function addFinetuneRoute(router: ApiRouter, runner: FinetuneRunner | null): void {
  // The job running or the last one, with its losses so far (the web page draws the curve).
  router.add('GET', '/v1/edge-node/finetune', () => ({ job: runner?.status() ?? null }));
  router.add('POST', '/v1/edge-node/finetune', async (req, res) => {
    if (!runner) throw new OpenAIError(503, 'this node serves no model, so it cannot fine-tune one', 'server_error', 'no_model');
    const request = parseFinetuneBody(await readJsonBody(req, MAX_FINETUNE_BODY_BYTES));
    let job: PreparedFinetune;
    try {
      job = await runner.prepare(request);
    } catch (err) {
      if (err instanceof TrainingDataError) throw bad(err.message, 'invalid_training_data');
      if (err instanceof FinetuneOptionError) throw bad(err.message);
      if (err instanceof FinetuneMemoryError) throw bad(err.message, 'finetune_does_not_fit');
      if (err instanceof FinetuneBusyError) throw new OpenAIError(409, err.message, 'invalid_request_error', 'finetune_busy');
      throw err;
    }
    const out = new NdjsonWriter(res);
    out.start();
    const stop = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) stop.abort();
    });
    try {
      const report = await job.run((p) => out.send({ type: 'progress', ...p }), stop.signal, (message) => out.send({ type: 'notice', message }));
      const { adapter, ...rest } = report;
      out.end({ type: 'done', ...rest, adapter: Buffer.from(adapter).toString('base64') });
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      out.end({ type: 'error', name: e.name, message: e.message });
    }
    return undefined;
  });
}
