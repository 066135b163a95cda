import { access, constants, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { FinetuneJobRequest, FinetuneProgress } from '@edge-node/node';
import { errorText, NodeApiError, type NodeApi } from '../node-api.js';

/** The options a node's job takes (its model and threads are the node's). */
export interface RemoteFinetuneOptions extends Omit<FinetuneJobRequest, 'data' | 'source'> {
  /** The JSONL file (its text is sent to the node). */
  data: string;
  out: string;
  onProgress: (p: FinetuneProgress) => void;
  /** What the node tells as it happens (a stage lost, the job going on without it). */
  onNotice: (message: string) => void;
}

export interface RemoteFinetuneReport {
  examples: number;
  parameters: number;
  losses: number[];
  tokensPerSecond: number;
  stages: { name: string; startLayer: number; endLayer: number }[];
}

type Line = ({ type: 'progress' } & FinetuneProgress) | { type: 'notice'; message: string } | ({ type: 'done'; adapter: string } & RemoteFinetuneReport) | { type: 'error'; name: string; message: string };

/**
 * `edge-node finetune --api URL`: the data file sent to the node (which keeps it: only hidden states and gradients go
 * to the other stages), its progress lines shown as local training shows them, and the adapter it returns written.
 */
export async function finetuneThroughNode(api: NodeApi, o: RemoteFinetuneOptions): Promise<RemoteFinetuneReport> {
  const data = await readFile(o.data, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new NodeApiError(`${o.data}: cannot read it (${e.code ?? e.message})`);
  });
  await access(dirname(o.out), constants.W_OK).catch(() => {
    throw new NodeApiError(`cannot write the adapter to ${o.out}: its folder does not exist or is not writable`);
  });
  const { onProgress, onNotice, out: _out, data: _data, ...options } = o;
  let res: Response;
  try {
    res = await fetch(`${api.base}/v1/edge-node/finetune`, { method: 'POST', headers: api.headers, body: JSON.stringify({ data, source: basename(o.data), ...options }) });
  } catch (err) {
    throw new NodeApiError(`no edge-node answers at ${api.base} (${(err as Error).cause ?? (err as Error).message}); is it running? pass --api with its API URL`);
  }
  if (!res.ok || !res.body) throw new NodeApiError(`${api.base} refused the job (${res.status}): ${await errorText(res)}`);
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (text === '') continue;
      const line = JSON.parse(text) as Line;
      if (line.type === 'progress') onProgress(line);
      else if (line.type === 'notice') onNotice(line.message);
      else if (line.type === 'error') throw new NodeApiError(`the fine-tuning job failed on ${api.base}: ${line.message}`);
      else {
        const { adapter, ...report } = line;
        await writeFile(o.out, Buffer.from(adapter, 'base64'));
        return report;
      }
    }
  }
  throw new NodeApiError(`${api.base} closed the job's stream before it finished (the node stopped?)`);
}
