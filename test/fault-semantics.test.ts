/**
 * What a client and the cluster see around failures, with node processes on loopback:
 *  (a) the nodes left cannot hold the model: the SSE stream ends with an error event naming the missing memory,
 *      /v1/cluster shows planError, and once the node is back the next request succeeds;
 *  (b) the coordinator dies mid-request: the other stages free that request's KV sessions within seconds;
 *  (c) a node that joins mid-request does not disturb it, and the next request's plan includes it;
 *  (d) a stage that freezes (SIGSTOP: no TCP close, like a cut cable) is noticed by missed heartbeats and the answer
 *      completes unchanged after a pause.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { CHAOS_BODY, STORIES_260K, streamCompletion } from './support/chaos-scenario.js';
import { DEFAULT_MAX_GRACE_MS } from '../packages/node/src/cluster/liveness.js';

/**
 * stories260K at context 512 × 4 concurrent requests needs ~4.1 MB (weights + KV + activations) by the planner's
 * count: with 3 MB each one node cannot hold it and two can (split 2 + 3 layers).
 */
const TIGHT_BUDGET = '3000000';
const CONTEXT = '512';
const LONG = { ...CHAOS_BODY, max_tokens: 300 };

interface ClusterJson {
  planError: string | null;
  plan: { stages: { peerId: string; name: string }[]; excluded: { device: string }[] } | null;
  peers: { peerId: string }[];
  serving: { kvSessions: number };
}

/** Nodes a, b, c with the 2,2,1 split (a coordinates), all in the pipeline. */
async function startRing(h: ClusterHarness): Promise<{ a: RunningNode; b: RunningNode; c: RunningNode; model: string }> {
  const args = ['--model', STORIES_260K, '--no-mdns', '--split', '2,2,1'];
  const a = await h.startNode({ name: 'a', args });
  const [b, c] = await Promise.all([
    h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] }),
    h.startNode({ name: 'c', args: [...args, '--bootstrap', a.addresses[0]] }),
  ]);
  await h.waitForPipelineMembers([a, b, c]);
  return { a, b, c, model: await a.modelId() };
}

async function metric(node: RunningNode, name: string): Promise<number> {
  const text = await (await fetch(`${node.apiUrl}/metrics`)).text();
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

describe('(a) the remaining nodes cannot hold the model', () => {
  const h = new ClusterHarness('fault-no-fit');
  afterAll(() => h.cleanup());

  it('ends the stream with an error event naming the missing memory, reports planError, and recovers when the node returns', async () => {
    const args = ['--model', STORIES_260K, '--no-mdns', '--memory-budget', TIGHT_BUDGET, '--context', CONTEXT];
    const a = await h.startNode({ name: 'a', args });
    let b = await h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] });
    await h.waitForPipelineMembers([a, b]);
    const model = await a.modelId();
    const reference = (await a.complete({ ...LONG, model })).choices[0].text;
    const plan = ((await a.cluster()) as ClusterJson).plan!;
    expect(plan.stages.map((s) => s.name).sort()).toEqual(['a', 'b']); // both are needed

    // Kill b once the answer is under way.
    const result = await streamCompletion(a.apiUrl, { ...LONG, model }, 60_000, (n) => {
      if (n === 5) b.kill('SIGKILL');
    });
    console.log(`after ${result.chunks} chunks, b killed; the stream's error event: ${result.error}`);
    expect(result.chunks).toBeGreaterThanOrEqual(5);
    expect(result.text.length).toBeLessThan(reference.length);
    expect(reference.startsWith(result.text)).toBe(true); // what did arrive was right
    expect(result.error).toMatch(/does not fit.*missing about [\d.]+ [kMG]?B/);
    expect(result.done).toBe(false); // an error event, then the stream closed (no [DONE])

    const cluster = (await a.cluster()) as ClusterJson;
    expect(cluster.planError).toMatch(/missing about [\d.]+ [kMG]?B/);
    // No new plan could be made, so the plan in force still has b's stage; yet b left, and no view shows it
    // (membership dropped it, at once on the closed connection, at worst within the failure timeout).
    await h.waitFor(async () => !((await a.cluster()) as ClusterJson).peers.some((p) => p.peerId === b.peerId), 5000, 'a drops b');
    const shown = ((await a.cluster()) as ClusterJson).plan!;
    expect(shown.stages.map((s) => s.name)).toEqual(['a']);
    expect(JSON.stringify(shown)).not.toContain(b.peerId);
    expect(await metric(a, 'edge_node_recoveries_total{outcome="failed"}')).toBe(1);
    expect(a.output()).toMatch(/lost stage node b and cannot carry on: .*does not fit/);
    expect(a.running).toBe(true);

    // While b is away, a request fails at once with 503 and the same reason.
    const refused = await h.postJson(`${a.apiUrl}/v1/completions`, { ...LONG, model, max_tokens: 5 });
    expect(refused.status).toBe(503);
    expect(JSON.stringify(refused.json)).toMatch(/does not fit/);

    // b comes back (same identity): taken in again, the next request succeeds with the same text.
    await b.exited;
    b = await h.startNode({ name: 'b', dataDir: b.dataDir, args: [...args, '--bootstrap', a.addresses[0]] });
    await h.waitForPipelineMembers([a, b]);
    expect((await a.complete({ ...LONG, model })).choices[0].text).toBe(reference);
    expect(((await a.cluster()) as ClusterJson).planError).toBeNull();
  }, 120_000);
});

describe('(b) the coordinator dies mid-request', () => {
  const h = new ClusterHarness('fault-coordinator');
  afterAll(() => h.cleanup());

  it('the other stages free the request within seconds', async () => {
    const { a, b, c, model } = await startRing(h);
    await a.complete({ ...CHAOS_BODY, model, max_tokens: 5 }); // stages loaded

    const sessions = async (n: RunningNode) => ((await n.cluster()) as ClusterJson).serving.kvSessions;
    let heldDuring = [0, 0];
    let killedAt = 0;
    const stream = streamCompletion(a.apiUrl, { ...LONG, model }, 30_000, (n) => {
      if (n === 5) {
        // Sample the stages' sessions, then kill the coordinator.
        void Promise.all([sessions(b), sessions(c)]).then((s) => {
          heldDuring = s;
          killedAt = Date.now();
          a.kill('SIGKILL');
        });
      }
    }).catch((err: Error) => err);
    await stream; // ends when a dies
    await h.waitFor(() => killedAt > 0, 5000, 'the kill');
    expect(heldDuring).toEqual([1, 1]);
    const freedMs = await h.waitFor(async () => (await sessions(b)) === 0 && (await sessions(c)) === 0, 8000, 'b and c to free the request', 50);
    const sinceKill = Date.now() - killedAt;
    console.log(`coordinator killed; b and c freed the request ${sinceKill} ms later`);
    expect(freedMs).toBeLessThan(8000);
    expect(b.output()).toMatch(/freed 1 request\(s\) of coordinator a: coordinator left/);
    expect(c.output()).toMatch(/freed 1 request\(s\) of coordinator a: coordinator left/);
    expect(b.running && c.running).toBe(true);
  }, 120_000);
});

describe('(c) a node joins mid-request', () => {
  const h = new ClusterHarness('fault-join');
  afterAll(() => h.cleanup());

  it('does not disturb the request in flight and is in the plan of the next one', async () => {
    // --split 2,2,1 applies once three nodes are there; with two, the partitioner plans.
    const args = ['--model', STORIES_260K, '--no-mdns', '--split', '2,2,1'];
    const a = await h.startNode({ name: 'a', args });
    const b = await h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] });
    await h.waitForPipelineMembers([a, b]);
    const model = await a.modelId();
    const reference = (await a.complete({ ...LONG, model })).choices[0].text;
    const planBefore = ((await a.cluster()) as ClusterJson).plan!;
    expect(planBefore.stages.map((s) => s.name)).not.toContain('c');

    // Stream answers back to back while c starts, until one of them was in flight when a saw c join.
    const c = h.spawnNode({ name: 'c', args: [...args, '--bootstrap', a.addresses[0]] });
    const joinTime = () => {
      const m = /(\S+) \[a\] join: c \(/.exec(a.output());
      return m ? Date.parse(m[1]) : null;
    };
    let spanned = false;
    for (let i = 0; i < 40 && !spanned; i++) {
      const start = Date.now();
      const r = await streamCompletion(a.apiUrl, { ...LONG, model });
      const end = Date.now();
      expect(r.error).toBeNull();
      expect(r.text).toBe(reference);
      const joined = joinTime();
      if (joined !== null) {
        spanned = joined > start && joined < end;
        if (!spanned) break; // c joined between two requests: nothing was in flight
      }
    }
    expect(spanned, 'c joined while an answer was streaming').toBe(true);
    await c.ready(20_000);
    await h.waitForPipelineMembers([a, b, c]);

    // The next request plans again and takes c in (split 2,2,1 over a, b, c).
    expect((await a.complete({ ...LONG, model })).choices[0].text).toBe(reference);
    const planAfter = ((await a.cluster()) as ClusterJson).plan!;
    expect(planAfter.stages.map((s) => s.name)).toEqual(['a', 'b', 'c']);
    expect(await metric(a, 'edge_node_recoveries_total{outcome="recovered"}')).toBe(0); // nothing was replayed
  }, 120_000);
});


describe('(d) a stage freezes mid-request (no connection close)', () => {
  const h = new ClusterHarness('fault-freeze');
  afterAll(() => h.cleanup());

  it('is noticed by missed heartbeats and the answer completes with the same text', async () => {
    const { a, b, c, model } = await startRing(h);
    const reference = (await a.complete({ ...CHAOS_BODY, model })).choices[0].text;

    let last = 0;
    let longestGap = 0;
    const r = await streamCompletion(a.apiUrl, { ...CHAOS_BODY, model }, 60_000, (n) => {
      const now = performance.now();
      if (last > 0) longestGap = Math.max(longestGap, now - last);
      last = now;
      if (n === 5) c.kill('SIGSTOP');
    });
    c.kill('SIGKILL'); // a stopped process also ignores SIGTERM at cleanup
    console.log(`c frozen after 5 chunks; longest pause in the stream ${longestGap.toFixed(0)} ms`);
    expect(r.error).toBeNull();
    expect(r.text).toBe(reference);
    expect(r.done).toBe(true);
    expect(longestGap).toBeGreaterThan(1000); // it did wait for the heartbeats to lapse
    const leave = /leave: c \(\w+\): no heartbeat for [\d.]+ s[^\n]*/.exec(a.output())?.[0];
    expect(leave).toBeDefined();
    // The silence c was allowed: 2 s, more if it had announced late beats or a slow device before it froze (a busy
    // machine), never more than 2 s + DEFAULT_MAX_GRACE_MS; then 2 s to re-plan and replay.
    const allowedMs = 1000 * Number(/so it had ([\d.]+) s/.exec(leave!)?.[1] ?? 2);
    expect(allowedMs).toBeLessThanOrEqual(2000 + DEFAULT_MAX_GRACE_MS);
    expect(longestGap).toBeLessThan(allowedMs + 2000);
    expect(b.running).toBe(true);
  }, 120_000);
});
