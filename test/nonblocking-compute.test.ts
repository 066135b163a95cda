/**
 * Compute never blocks a node (issue 21): two real node processes, `--split 4,4` of a random-weight model (8 layers,
 * hidden 768, Q8_0), requests with long prompts streaming through both. The stage node b is throttled to 5 % of a
 * core (cgroup v1 cpu quota, on that process only) while it computes: it answers /health promptly the whole time and
 * nobody declares it lost. Then b is stopped (SIGSTOP) mid-work: a declares it lost within the failure timeout plus
 * the most grace a busy node gets (2 s + 3 s).
 *
 * Before compute was sliced (checked by running this file against the engine and cluster sources of cac6011), b's
 * /health took p50 1.4 s and p95 3.8 s here (9 polls answered in 15 s), and a busy node that stopped had up to 20 s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupV1 } from './support/cgroup-v1.js';
import { ClusterHarness, sleep, type RunningNode } from './support/cluster-harness.js';

const canThrottle = CgroupV1.available('cpu');
/** Membership's defaults: beats every 0.5 s, a silent peer lost after 2 s, plus at most 3 s for one that said it was busy. */
const FAILURE_TIMEOUT_MS = 2000;
const MAX_GRACE_MS = 3000;
const THROTTLE_MS = 15_000;
const PROMPT = 'Once upon a time, in a small town by the sea, there lived a girl who loved to read. '.repeat(8);

describe.skipIf(!canThrottle)('compute never blocks a node', () => {
  const h = new ClusterHarness('nonblocking-compute');
  let a: RunningNode;
  let b: RunningNode;
  let cpu: CgroupV1 | null = null;
  let model = '';

  /** ms from the timestamps of the node's log lines: "leave:" lines about other nodes (not its own shutdown). */
  const leaves = (n: RunningNode, from: number) =>
    [...n.output().matchAll(/^(\S+) \[\w+\] leave: (.*)$/gm)].filter((m) => !/: shut down;/.test(m[2]) && Date.parse(m[1]) >= from).map((m) => ({ at: Date.parse(m[1]), line: m[0] }));

  /** Rows b's stage has computed so far (its /metrics). */
  const stageRows = async (n: RunningNode) => {
    const text = await (await fetch(`${n.apiUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    return Number(/^edge_node_stage_batch_rows_sum (\S+)$/m.exec(text)?.[1] ?? NaN);
  };

  /** Requests through both stages, one after another, until stopped; failures are counted, not thrown. */
  const keepBusy = (state: { on: boolean; done: number; failed: string[] }) =>
    (async () => {
      while (state.on) {
        try {
          await a.complete({ model, prompt: PROMPT, max_tokens: 6, temperature: 0, ignore_eos: true }, 60_000);
          state.done++;
        } catch (err) {
          if (state.on) state.failed.push((err as Error).message);
        }
      }
    })();

  beforeAll(async () => {
    const path = await h.syntheticGguf('m768x8-q8.gguf', { numLayers: 8, dtype: 'Q8_0', seed: 3 });
    const args = ['--model', path, '--no-mdns', '--split', '4,4', '--context', '1024'];
    a = await h.startNode({ name: 'a', args });
    b = await h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] });
    await h.waitForPipelineMembers([a, b], 20_000);
    model = await a.modelId();
  }, 60_000);

  afterAll(async () => {
    if (b?.running) b.kill('SIGCONT');
    cpu?.cleanup();
    await h.cleanup();
  });

  it('a node throttled to 5 % of a core while it computes answers /health promptly and is not declared lost; stopped, it is lost within the failure timeout', async () => {
    // Warm: both stages loaded, b holding layers 4–8 and the head.
    const first = await a.complete({ model, prompt: PROMPT, max_tokens: 4, temperature: 0, ignore_eos: true });
    expect(first.usage.prompt_tokens).toBeGreaterThan(150);

    const load = { on: true, done: 0, failed: [] as string[] };
    const workers = [keepBusy(load), keepBusy(load)];
    await sleep(1500);
    cpu = new CgroupV1('cpu', 'edge-nonblocking');
    cpu.add(b.proc.pid!);
    cpu.setCpuQuota(0.05);
    const throttledAt = Date.now();
    const rowsBefore = await stageRows(b);

    // b's /health, ten times a second, while it computes at 5 % of a core; a's view of the cluster alongside.
    const latencies: number[] = [];
    const aPeers: number[] = [];
    while (Date.now() - throttledAt < THROTTLE_MS) {
      const t0 = performance.now();
      const res = await fetch(`${b.apiUrl}/health`, { signal: AbortSignal.timeout(10_000) });
      expect(res.ok).toBe(true);
      await res.json();
      latencies.push(performance.now() - t0);
      aPeers.push((await a.health()).peers);
      await sleep(100);
    }
    const sorted = [...latencies].sort((x, y) => x - y);
    const p50 = sorted[Math.floor(sorted.length * 0.5)];
    const p95 = sorted[Math.floor(sorted.length * 0.95)];
    const max = sorted[sorted.length - 1];
    const computed = (await stageRows(b)) - rowsBefore;
    const throttled = /nr_throttled (\d+)/.exec(readFileSync(join(cpu.dir, 'cpu.stat'), 'utf8'))?.[1];
    console.log(
      `b throttled to 5 % for ${THROTTLE_MS / 1000} s: /health p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms, max ${max.toFixed(0)} ms over ${latencies.length} polls; ` +
        `b computed ${computed} rows meanwhile, throttled in ${throttled} CFS periods (${load.done} requests done in all, ${load.failed.length} failed)`,
    );
    // b kept computing (slowly), and its event loop kept turning.
    expect(computed).toBeGreaterThan(0);
    expect(load.failed).toEqual([]);
    // At 5 % of a core a millisecond of CPU takes 20 of wall time. The loop turns every product piece (~1 ms of CPU),
    // so most polls wait one throttled period or two (p50 ~100-250 ms measured; 1.4 s before compute was sliced).
    // What remains are V8's garbage collections, whose pauses the throttle stretches to 1-4 s (two or three in 15 s,
    // so they set the p95: 0.4-2.9 s measured, 3.8 s before); they stay under what liveness allows a node that
    // announced its lag (the failure timeout + the grace).
    expect(p50).toBeLessThan(500);
    expect(p95).toBeLessThan(4000);
    expect(max).toBeLessThan(FAILURE_TIMEOUT_MS + MAX_GRACE_MS);
    // Nobody was declared lost: a always counted b, and neither log has a "leave:".
    expect(Math.min(...aPeers)).toBe(1);
    expect(leaves(a, throttledAt)).toEqual([]);
    expect(leaves(b, throttledAt)).toEqual([]);

    // Stopped mid-work (still throttled, requests in flight): lost within the failure timeout plus the grace cap.
    const stoppedAt = Date.now();
    b.kill('SIGSTOP');
    await h.waitFor(() => leaves(a, stoppedAt).length > 0, FAILURE_TIMEOUT_MS + MAX_GRACE_MS + 5000, 'a to declare the stopped b lost');
    const lost = leaves(a, stoppedAt)[0];
    const lostAfterMs = lost.at - stoppedAt;
    console.log(`b stopped: a declared it lost after ${lostAfterMs} ms: ${lost.line}`);
    // Slack past the allowance: membership checks every 250 ms, on a coordinator that shares two busy cores.
    expect(lostAfterMs).toBeLessThanOrEqual(FAILURE_TIMEOUT_MS + MAX_GRACE_MS + 1000);
    load.on = false;
    b.kill('SIGCONT');
    b.kill('SIGKILL');
    await Promise.all(workers);
  });
});
