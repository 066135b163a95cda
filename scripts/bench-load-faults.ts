/**
 * A throttled or starved node is slow, never lost; a stopped one is lost (issue 21). Three `edge-node start`
 * processes on loopback (the model and settings of test/adaptive-load.test.ts: 12 random-weight layers, hidden 768,
 * about 7 layers of memory per node, `--busy-threshold 2.5`) serve greedy streams from node a back to back while a
 * stage node other than a is, in turn:
 *
 *   throttle  put in a cgroup v1 cpu group of its own at --quota of one core (default 5 %) for --seconds (60);
 *   starve    put in a cpu group with --busy (4) busy processes, the group capped at one core (so it gets about a
 *             fifth of a core and the rest of the machine keeps the other core), for --seconds;
 *   stop      sent SIGSTOP (and killed once it is declared lost).
 *
 * For each it reports: nodes declared lost (a "leave:" in any log, or a /health counting fewer peers) from the fault
 * until the layers are back (goal 0 for throttle and starve), when the node shed its layers (goal ≤ 10 s after the
 * fault), whether a plan gave it layers again while the fault lasted (it should not), and when it took layers back
 * after the lift (≤ 10 s; how many depends on every node's figures of the moment), for stop when it was declared lost (goal: within the failure
 * timeout, 2 s plus at most 3 s of grace it announced), and whether every stream completed with the text of an
 * unmoved run. Root only (cgroup v1 `cpu` controller).
 *
 *   npx tsx scripts/bench-load-faults.ts [--phases throttle,starve,stop] [--seconds 60] [--quota 0.05] [--busy 4] [--json OUT]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { CgroupV1 } from '../test/support/cgroup-v1.js';
import { ClusterHarness, sleep, type RunningNode } from '../test/support/cluster-harness.js';

const { values: v } = parseArgs({
  options: {
    phases: { type: 'string', default: 'throttle,starve,stop' },
    seconds: { type: 'string', default: '60' },
    quota: { type: 'string', default: '0.05' },
    busy: { type: 'string', default: '4' },
    json: { type: 'string' },
  },
});
const FAULT_MS = Number(v.seconds) * 1000;
const PROMPT = 'Once upon a time, in a small town by the sea,';
const ANSWER_TOKENS = 60;
/** Membership's defaults: a silent peer is lost after 2 s, plus at most 3 s for one that announced lag or load. */
const FAILURE_TIMEOUT_MS = 2000;
const MAX_GRACE_MS = 3000;

interface View {
  plan: { stages: { peerId: string; startLayer: number; endLayer: number }[] } | null;
  planHistory: { at: number }[];
}
/** The planner's hysteresis (10 s) and a second: a fault starts on a plan that may change at once. */
const SETTLED_MS = 11_000;
interface Result {
  phase: string;
  victim: string;
  layersBefore: number;
  /** ms from the fault to the first plan without all of the victim's layers (null: never). */
  shedMs: number | null;
  /** ms from the lift to a plan giving the victim layers again (null: never, or it held some at the lift). */
  backMs: number | null;
  /** Plans that gave the victim layers again while the fault lasted (a throttled node taking work back). */
  backDuringFault: number;
  /** stop: ms from SIGSTOP to the coordinator's "leave:" line. */
  lostMs: number | null;
  /** "leave:" lines about a live node from the fault until the layers were back (throttle, starve). */
  leaves: string[];
  fewestPeers: number;
  healthFailures: number;
  streams: number;
  streamsFailed: string[];
  streamsChanged: number;
  worstGapMs: number;
  load: string;
}

if (!CgroupV1.available('cpu')) throw new Error('bench:load-faults needs root and the cgroup v1 cpu controller (/sys/fs/cgroup/cpu)');

const h = new ClusterHarness('bench-load-faults');
const busyProcs: ChildProcess[] = [];
let group: CgroupV1 | null = null;

const layersOf = (view: View, peerId: string) => (view.plan?.stages ?? []).filter((s) => s.peerId === peerId).reduce((t, s) => t + s.endLayer - s.startLayer, 0);
const leavesSince = (n: RunningNode, from: number, to = Infinity) =>
  [...n.output().matchAll(/^(\S+) \[\w+\] leave: (.*)$/gm)].filter((m) => !/: shut down;/.test(m[2]) && Date.parse(m[1]) >= from && Date.parse(m[1]) <= to).map((m) => ({ at: Date.parse(m[1]), line: m[0] }));
const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

/** Greedy streams from `a`, back to back until `state.on` is false; each must be a prefix of (and as long as) the reference. */
function keepStreaming(client: OpenAI, model: string, reference: string, state: { on: boolean; done: number; failed: string[]; changed: number; worstGapMs: number }) {
  return (async () => {
    while (state.on) {
      try {
        const s = await client.completions.create({ model, prompt: PROMPT, max_tokens: ANSWER_TOKENS, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming);
        let text = '';
        let last = performance.now();
        for await (const chunk of s) {
          const t = chunk.choices[0]?.text ?? '';
          if (!t) continue;
          text += t;
          const now = performance.now();
          state.worstGapMs = Math.max(state.worstGapMs, now - last);
          last = now;
        }
        state.done++;
        if (text !== reference) state.changed++;
      } catch (err) {
        state.failed.push((err as Error).message);
      }
    }
  })();
}

async function run(): Promise<Result[]> {
  const path = await h.syntheticGguf('m768x12.gguf', { numLayers: 12, dtype: 'F32', seed: 7 });
  const args = ['--model', path, '--no-mdns', '--memory-budget', '220000000', '--context', '1024', '--concurrency', '2', '--busy-threshold', '2.5'];
  const a = await h.startNode({ name: 'a', args });
  const b = await h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] });
  const c = await h.startNode({ name: 'c', args: [...args, '--bootstrap', a.addresses[0]] });
  const nodes = [a, b, c];
  await h.waitForPipelineMembers(nodes, 60_000);
  const client = new OpenAI({ baseURL: `${a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0, timeout: 300_000 });
  const model = await a.modelId();
  const view = async () => (await a.cluster()) as View;
  const reference = (await client.completions.create({ model, prompt: PROMPT, max_tokens: ANSWER_TOKENS, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming)).choices[0].text;
  const results: Result[] = [];

  for (const phase of v.phases!.split(',')) {
    await h.waitFor(async () => Date.now() - ((await view()).planHistory.at(-1)?.at ?? 0) > SETTLED_MS, 90_000, 'the plan to settle', 500);
    const before = await view();
    const victim = nodes.filter((n) => n !== a && n.running).sort((x, y) => layersOf(before, y.peerId) - layersOf(before, x.peerId))[0];
    const held = layersOf(before, victim.peerId);
    const streams = { on: true, done: 0, failed: [] as string[], changed: 0, worstGapMs: 0 };
    const streaming = [keepStreaming(client, model, reference, streams), keepStreaming(client, model, reference, streams)];
    // Every live node's /health, four times a second, from the fault on.
    const watch = { on: true, fewest: Infinity, failures: 0 };
    const watched = nodes.filter((n) => n.running);
    const watching = (async () => {
      while (watch.on) {
        await Promise.all(
          watched.map(async (n) => {
            if (phase === 'stop' && n === victim) return;
            try {
              watch.fewest = Math.min(watch.fewest, (await n.health()).peers);
            } catch {
              watch.failures++;
            }
          }),
        );
        await sleep(250);
      }
    })();
    await sleep(3000);
    console.log(`${phase}: ${victim.name} holds ${held} layers; load ${load()}`);
    const faultAt = Date.now();
    let shedMs: number | null = null;
    let backMs: number | null = null;
    let lostMs: number | null = null;
    let backDuringFault = 0;
    if (phase === 'stop') {
      victim.kill('SIGSTOP');
      await h.waitFor(() => leavesSince(a, faultAt).length > 0, FAILURE_TIMEOUT_MS + MAX_GRACE_MS + 15_000, `a to declare the stopped ${victim.name} lost`, 50);
      lostMs = leavesSince(a, faultAt)[0].at - faultAt;
      // The streams go on over the two nodes left (a plan without the stopped node).
      await sleep(10_000);
      victim.kill('SIGCONT');
      victim.kill('SIGKILL');
    } else {
      group = new CgroupV1('cpu', `load-faults-${phase}`);
      group.add(victim.proc.pid!);
      if (phase === 'starve') {
        for (let i = 0; i < Number(v.busy); i++) {
          const p = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
          busyProcs.push(p);
          group.add(p.pid!);
        }
      }
      group.setCpuQuota(phase === 'starve' ? 1 : Number(v.quota));
      let previous = held;
      while (Date.now() - faultAt < FAULT_MS) {
        // A view that failed (a busy coordinator) is no sample: read as the view before the fault, it counted a
        // shed node as given its layers back.
        const seen = await view().catch(() => null);
        if (seen) {
          const now = layersOf(seen, victim.peerId);
          if (shedMs === null && now < held) shedMs = Date.now() - faultAt;
          if (previous === 0 && now > 0) backDuringFault++;
          previous = now;
        }
        await sleep(200);
      }
      const stopping = busyProcs.splice(0);
      for (const p of stopping) p.kill('SIGKILL');
      // A cgroup holding a process is not removed: wait until the busy ones have gone.
      await Promise.all(stopping.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
      group.setCpuQuota(null);
      group.cleanup();
      group = null;
      const liftedAt = Date.now();
      console.log(`${phase}: lifted after ${((liftedAt - faultAt) / 1000).toFixed(1)} s (layers shed after ${shedMs === null ? 'never' : `${(shedMs / 1000).toFixed(1)} s`}); load ${load()}`);
      const atLift = await view().catch(() => null);
      if (atLift === null || layersOf(atLift, victim.peerId) === 0) {
        backMs = await h.waitFor(async () => layersOf(await view(), victim.peerId) > 0, 60_000, `layers back on ${victim.name}`, 200).catch(() => null);
      }
    }
    const until = Date.now();
    streams.on = false;
    await Promise.all(streaming);
    watch.on = false;
    await watching;
    const leaves = phase === 'stop' ? [] : nodes.flatMap((n) => leavesSince(n, faultAt, until).map((l) => `${n.name}: ${l.line}`));
    const r: Result = {
      phase,
      victim: victim.name,
      layersBefore: held,
      shedMs,
      backMs,
      backDuringFault,
      lostMs,
      leaves,
      fewestPeers: watch.fewest,
      healthFailures: watch.failures,
      streams: streams.done,
      streamsFailed: streams.failed,
      streamsChanged: streams.changed,
      worstGapMs: Math.round(streams.worstGapMs),
      load: load(),
    };
    console.log(JSON.stringify(r));
    results.push(r);
    if (phase !== 'stop') await sleep(2000);
  }
  return results;
}

const secs = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);
try {
  const results = await run();
  console.log('\nphase     victim  shed after  back after  back during  lost after  nodes lost  fewest peers  /health failed  streams (failed, changed)  worst gap  load');
  for (const r of results) {
    console.log(
      `${r.phase.padEnd(9)} ${r.victim.padEnd(7)} ${secs(r.shedMs).padStart(10)} ${secs(r.backMs).padStart(11)} ${String(r.backDuringFault).padStart(12)} ${secs(r.lostMs).padStart(11)} ${String(r.leaves.length).padStart(11)} ${String(r.fewestPeers).padStart(13)} ${String(r.healthFailures).padStart(15)}  ${`${r.streams} (${r.streamsFailed.length}, ${r.streamsChanged})`.padStart(24)} ${`${(r.worstGapMs / 1000).toFixed(1)} s`.padStart(10)}  ${r.load}`,
    );
    for (const l of r.leaves) console.log(`  ${l}`);
    for (const f of r.streamsFailed.slice(0, 3)) console.log(`  stream failed: ${f}`);
  }
  if (v.json) writeFileSync(v.json, JSON.stringify(results, null, 2));
} finally {
  for (const p of busyProcs) p.kill('SIGKILL');
  // Assigned inside the phases, which control-flow narrowing does not follow.
  (group as CgroupV1 | null)?.cleanup();
  await h.cleanup();
}
