/**
 * Device loss mid-generation: a 3-node loopback cluster streams a 200-token greedy answer while a random
 * non-coordinator node is SIGKILLed at a random moment; the answer must complete and equal the fault-free one.
 * `scripts/chaos.ts` runs the same scenario 50 times and prints the pass rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, ensureBuilt, type RunningNode } from './support/cluster-harness.js';

const MODEL = new URL('../../shared/models/stories260k/stories260K.gguf', import.meta.url).pathname;
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 10);
const BODY = { prompt: 'Once upon a time', max_tokens: 200, temperature: 0, ignore_eos: true };

/** Streams a completion over SSE; returns the concatenated text, the chunk count and how the stream ended. */
async function streamCompletion(apiUrl: string, model: string): Promise<{ text: string; chunks: number; done: boolean; finish: string | null }> {
  const res = await fetch(`${apiUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...BODY, model, stream: true }),
    signal: AbortSignal.timeout(60_000),
  });
  if (res.status !== 200) throw new Error(`stream answered ${res.status}: ${await res.text()}`);
  let text = '';
  let chunks = 0;
  let done = false;
  let finish: string | null = null;
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
        done = true;
        continue;
      }
      const json = JSON.parse(data) as { error?: { message: string }; choices?: { text: string; finish_reason: string | null }[] };
      if (json.error) throw new Error(`error event in the stream: ${json.error.message}`);
      const choice = json.choices?.[0];
      if (!choice) continue;
      text += choice.text;
      chunks++;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, chunks, done, finish };
}

describe('a stage node dies mid-answer', () => {
  const h = new ClusterHarness('chaos');
  let a: RunningNode;
  const others = new Map<string, RunningNode>();
  const args = ['--model', MODEL, '--split', '2,2,1', '--no-mdns'];
  let reference = '';
  let model = '';

  const startPeer = async (name: string) => {
    const node = await h.startNode({ name, args: [...args, '--bootstrap', a.addresses[0]] });
    others.set(name, node);
    return node;
  };

  beforeAll(async () => {
    ensureBuilt();
    a = await h.startNode({ name: 'a', args });
    await startPeer('b');
    await startPeer('c');
    await h.waitFor(async () => (await a.health()).peers === 2, 10_000, 'a sees b and c');
    const first = await a.complete(BODY);
    model = first.model;
    reference = first.choices[0].text;
    expect(reference.length).toBeGreaterThan(200);
  }, 120_000);

  afterAll(() => h.cleanup());

  it(`completes with identical text when b or c is killed at a random point (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const victimName = Math.random() < 0.5 ? 'b' : 'c';
      const victim = others.get(victimName)!;
      const delayMs = 20 + Math.random() * 400;
      const answer = streamCompletion(a.apiUrl, model);
      const killed = new Promise<void>((r) => setTimeout(() => (victim.kill('SIGKILL'), r()), delayMs));
      const [result] = await Promise.all([answer, killed]);
      const what = `round ${round}: ${victimName} killed after ${delayMs.toFixed(0)} ms`;
      expect(result.text, what).toBe(reference);
      expect(result.done, what).toBe(true);
      expect(result.finish, what).toBe('length');
      expect(result.chunks, what).toBeGreaterThan(10);
      // Bring the victim back and wait until the cluster has all three again (it is taken in again).
      await victim.exited;
      await startPeer(victimName);
      await h.waitFor(async () => (await a.health()).peers === 2, 10_000, `${victimName} is back`);
    }
    // At least one kill must have landed mid-answer (not between requests) for the test to mean anything.
    expect(a.output()).toMatch(/replaying \d+ tokens/);
  }, 600_000);
});
