/**
 * The device-loss scenario shared by test/chaos.test.ts (10 rounds) and scripts/chaos.ts (50 rounds): a 3-node
 * loopback cluster (split 2,2,1) streams a 200-token greedy answer over SSE from node a while b or c is SIGKILLed
 * at a random moment; the answer must equal the fault-free one. The victim is restarted after every round.
 */
import { ClusterHarness, ensureBuilt, type RunningNode } from './cluster-harness.js';
import { join } from 'node:path';

export const STORIES_260K = join(process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models', 'stories260k/stories260K.gguf');
export const CHAOS_BODY = { prompt: 'Once upon a time', max_tokens: 200, temperature: 0, ignore_eos: true };

export interface StreamResult {
  text: string;
  chunks: number;
  /** `data: [DONE]` arrived. */
  done: boolean;
  finish: string | null;
  /** The message of an error event, if the stream carried one. */
  error: string | null;
}

/** Streams a completion over SSE and collects it; an error event is reported, not thrown. */
export async function streamCompletion(
  apiUrl: string,
  body: Record<string, unknown>,
  timeoutMs = 60_000,
  onChunk?: (chunks: number) => void,
): Promise<StreamResult> {
  const res = await fetch(`${apiUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) throw new Error(`stream answered ${res.status}: ${await res.text()}`);
  const out: StreamResult = { text: '', chunks: 0, done: false, finish: null, error: null };
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(part, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      const data = event.split('\n').find((l) => l.startsWith('data: '))?.slice(6);
      if (data === undefined) continue;
      if (data === '[DONE]') {
        out.done = true;
        continue;
      }
      const json = JSON.parse(data) as { error?: { message: string }; choices?: { text: string; finish_reason: string | null }[] };
      if (json.error) {
        out.error = json.error.message;
        continue;
      }
      const choice = json.choices?.[0];
      if (!choice) continue;
      out.text += choice.text;
      out.chunks++;
      onChunk?.(out.chunks);
      if (choice.finish_reason) out.finish = choice.finish_reason;
    }
  }
  return out;
}

export interface ChaosRound {
  round: number;
  victim: string;
  delayMs: number;
  ok: boolean;
  /** Why the round failed (empty when ok). */
  problem: string;
  ms: number;
  result: StreamResult | null;
}

/** Three node processes and the fault-free reference answer; `round()` runs one kill-and-compare round. */
export class ChaosCluster {
  readonly h: ClusterHarness;
  a!: RunningNode;
  readonly others = new Map<string, RunningNode>();
  reference = '';
  model = '';
  private readonly args = ['--model', STORIES_260K, '--split', '2,2,1', '--no-mdns'];

  constructor(suite: string) {
    ensureBuilt();
    this.h = new ClusterHarness(suite);
  }

  async start(): Promise<void> {
    this.a = await this.h.startNode({ name: 'a', args: this.args });
    await Promise.all([this.startPeer('b'), this.startPeer('c')]);
    await this.h.waitFor(async () => (await this.a.health()).peers === 2, 10_000, 'a sees b and c');
    const first = await this.a.complete(CHAOS_BODY);
    this.model = first.model;
    this.reference = first.choices[0].text;
  }

  /** Kills b or c (SIGKILL) at a random moment of a streamed answer, then brings it back. */
  async round(round: number, random: () => number = Math.random): Promise<ChaosRound> {
    const victimName = random() < 0.5 ? 'b' : 'c';
    const victim = this.others.get(victimName)!;
    const delayMs = 20 + random() * 400;
    const t0 = performance.now();
    const answer = streamCompletion(this.a.apiUrl, { ...CHAOS_BODY, model: this.model }).catch((err: Error) => err);
    const killed = new Promise<void>((r) => setTimeout(() => (victim.kill('SIGKILL'), r()), delayMs));
    const [result] = await Promise.all([answer, killed]);
    const ms = performance.now() - t0;
    let problem = '';
    if (result instanceof Error) problem = `request failed: ${result.message}`;
    else if (result.error) problem = `error event: ${result.error}`;
    else if (result.text !== this.reference) problem = `text differs from the reference at char ${firstDifference(result.text, this.reference)}`;
    else if (!result.done || result.finish !== 'length') problem = `stream ended without [DONE]/length (done=${result.done}, finish=${result.finish})`;
    else if (result.chunks <= 10) problem = `only ${result.chunks} chunks`;
    // The victim comes back and the cluster has all three again before the next round (it is taken in again).
    await victim.exited;
    await this.startPeer(victimName);
    await this.h.waitFor(async () => (await this.a.health()).peers === 2, 10_000, `${victimName} is back`);
    return { round, victim: victimName, delayMs, ok: problem === '', problem, ms, result: result instanceof Error ? null : result };
  }

  /** How many kills landed mid-answer (the coordinator logged a replay). */
  replays(): number {
    return [...this.a.output().matchAll(/replaying \d+ tokens/g)].length;
  }

  cleanup(): Promise<void> {
    return this.h.cleanup();
  }

  private async startPeer(name: string): Promise<RunningNode> {
    const node = await this.h.startNode({ name, args: [...this.args, '--bootstrap', this.a.addresses[0]] });
    this.others.set(name, node);
    return node;
  }
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
