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

describe('a stage node dies mid-answer', () => {
  const h = new ClusterHarness('chaos');
  let a: RunningNode;
  const others = new Map<string, RunningNode>();
  const args = ['--model', MODEL, '--split', '2,2,1', '--no-mdns'];
  let reference = '';

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
    reference = (await a.complete(BODY)).choices[0].text;
    expect(reference.length).toBeGreaterThan(200);
  }, 120_000);

  afterAll(() => h.cleanup());

  it(`completes with identical text when b or c is killed at a random point (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const victimName = Math.random() < 0.5 ? 'b' : 'c';
      const victim = others.get(victimName)!;
      const delayMs = 20 + Math.random() * 400;
      const answer = a.complete(BODY, 60_000);
      const killed = new Promise<void>((r) => setTimeout(() => (victim.kill('SIGKILL'), r()), delayMs));
      const [result] = await Promise.all([answer, killed]);
      expect(result.choices[0].text, `round ${round}: ${victimName} killed after ${delayMs.toFixed(0)} ms`).toBe(reference);
      expect(result.usage.completion_tokens).toBe(200);
      // Bring the victim back and wait until the cluster has all three again (it is taken in again).
      await victim.exited;
      await startPeer(victimName);
      await h.waitFor(async () => (await a.health()).peers === 2, 10_000, `${victimName} is back`);
    }
    const log = a.output();
    expect(log).toMatch(/replaying \d+ tokens/);
  }, 600_000);
});
