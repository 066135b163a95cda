/**
 * The pause of a request moved to a new plan while it streams, against its history length: live (its KV copied to
 * the new route's stages while it decodes, then the delta at the switch) beside replay (`--live-moves off`: a prefill
 * of its history on the new route), in one run. Three `edge-node start` processes on loopback (the official `openai`
 * client, greedy, `--speculate off` so each chunk is one token); for each history length a reference answer is
 * streamed on the quiet plan, then the same request again, and after its 12th token a stage node's memory budget is
 * cut so that its layers must move: the moved request's pause is the largest gap between its streamed tokens after
 * the cut (beside the median gap), and its text must equal the reference's. The budget is then restored and the
 * layers come back before the next length.
 *
 *   npx tsx scripts/bench-migration.ts [--model FILE.gguf] [--histories 100,300,1000] [--modes live,replay]
 *                                     [--repeats N] [--budget BYTES] [--cut BYTES] [--json OUT] [--logs DIR]
 *
 * Default model: random weights of the llama-300m shape (hidden 1024, 16 layers, 8 KV heads), Q8_0, with the
 * built-in 512-piece vocabulary (so that answers are visible text, token by token), generated once into
 * os.tmpdir()/edge-node-bench. Each node offers --budget (default 200 MB: about 11 of the 16 layers, so the ring
 * needs two nodes); the node with most layers is cut to --cut (default 60 MB). Two shared cores: the load average
 * is printed with the figures.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { generateSyntheticModel } from '@edge-node/testkit';
import { ClusterHarness, type RunningNode } from '../test/support/cluster-harness.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    histories: { type: 'string', default: '100,300,1000' },
    modes: { type: 'string', default: 'live,replay' },
    budget: { type: 'string', default: '200000000' },
    cut: { type: 'string', default: '60000000' },
    'max-tokens': { type: 'string', default: '800' },
    repeats: { type: 'string', default: '1' },
    json: { type: 'string' },
    logs: { type: 'string' },
  },
});
const modelPath = v.model ?? join(tmpdir(), 'edge-node-bench', 'llama-300m-q8_0-v512-seed0.gguf');
if (!existsSync(modelPath)) {
  if (v.model) throw new Error(`no model at ${modelPath}`);
  mkdirSync(dirname(modelPath), { recursive: true });
  await generateSyntheticModel({ preset: 'llama-300m', padVocab: false, format: 'gguf', dtype: 'Q8_0', seed: 0, outPath: modelPath });
}
const histories = v.histories!.split(',').map(Number);
const maxTokens = Number(v['max-tokens']);
const repeats = Number(v.repeats);
const CUT_AFTER = 12;
/** Tokens from the start of the answer to its move, about (the cut after 12, then the planner's reaction). */
const LEAD = 70;

interface View {
  plan: { stages: { peerId: string; startLayer: number; endLayer: number }[] } | null;
}
interface Row {
  mode: string;
  /** Positions of the request when it moved (prompt + tokens streamed before the switch). */
  history: number;
  /** The gap before the first token of the new route (the pause the switch makes). */
  pauseMs: number;
  /**
   * Live: the same gap as the coordinator saw it, from the old route's last token to the new route's first (the
   * client's gap also counts a token that streamed no text of its own, and the client's and the delivery's delays).
   */
  tokenPauseMs: number | null;
  /** The largest gap from the cut on (the new stages loading on nodes that also serve the old route count here too). */
  worstAfterCutMs: number;
  medianGapMs: number;
  /** From the switch (live) or the decision (replay) to the first token on the new route, as the coordinator logs it. */
  switchMs: number | null;
  /** Live: of switchMs, the copy of the positions decoded since the pre-copy. */
  switchCopyMs: number | null;
  copiedMB: number | null;
  /** Live: the switch's phases in ms from the switch's decision (switch-phases.ts, the nodes' debug lines). */
  phases: Phases | null;
  sameText: boolean;
  load: number;
}

/**
 * A live switch, in ms from the coordinator's decision (each node logs wall-clock times at debug level): the gap
 * before it since the old route's last token, the delta's requests and the first step sent, every stage's delta
 * counted, and per new stage its delta (asked, read from the old stages, counted) and first step (arrived, its
 * positions there, computing, computed); the first token back.
 */
interface Phases {
  beforeMs: number;
  sentMs: number;
  copiedMs: number;
  tokenMs: number;
  /** The client got the old route's last token and the new route's first (its wall clock, to the millisecond). */
  clientLastMs?: number;
  clientFirstMs?: number;
  stages: { node: string; parts: string[]; delta: string; adoptMs: number; readMs: number; countedMs: number; arrivedMs: number; readyMs: number; startedMs: number; computedMs: number; laterComputeMs: number[] }[];
  /** The old stages' reads of the delta: asked, read out and hashed. */
  reads: { node: string; receivedMs: number; exportedMs: number }[];
}

const num = (line: string, key: string) => Number(line.match(new RegExp(`\\b${key}=([\\d.]+)`))?.[1] ?? NaN);
const round = (x: number) => Math.round(x * 10) / 10;

/** The phases of the switch the coordinator logged in `coordinatorLog`, from every node's log since the move began. */
function phasesOf(coordinatorLog: string, logs: { node: string; text: string }[], client: [number, number] | null): Phases | null {
  const line = coordinatorLog.match(/switch phases (\S+): .*/)?.[0];
  if (!line) return null;
  const rid = line.match(/switch phases (\S+):/)![1];
  const t0 = num(line, 'decided');
  const rel = (t: number) => round(t - t0);
  const lines = logs.flatMap(({ node, text }) => text.split('\n').map((l) => ({ node, l })));
  const token = num(line, 'token');
  const stages = logs.flatMap(({ node }) => {
    const parts = lines.filter((x) => x.node === node && x.l.includes(`adopt phases ${rid} `)).map((x) => x.l);
    const adopt = parts.at(-1);
    const steps = lines.filter((x) => x.node === node && x.l.includes(`step phases ${rid} `)).map((x) => x.l);
    const first = steps.find((l) => l.includes(`step phases ${rid} 1:`));
    if (!adopt || !first) return [];
    return [{
      node,
      parts: parts.map((l) => l.match(/\[(\d+\+\d+)\]/)?.[1] ?? '?'),
      delta: adopt.match(/\[(\d+\+\d+)\]/)?.[1] ?? '?',
      adoptMs: rel(num(adopt, 'received')),
      readMs: round(num(adopt, 'readMs')),
      countedMs: rel(num(adopt, 'counted')),
      arrivedMs: rel(num(first, 'arrived')),
      readyMs: rel(num(first, 'ready')),
      startedMs: rel(num(first, 'started')),
      computedMs: rel(num(first, 'computed')),
      // The steps after it on the same stage, to compare its compute with.
      laterComputeMs: steps.filter((l) => l !== first).map((l) => round(num(l, 'computed') - num(l, 'started'))),
    }];
  });
  const reads = lines
    .filter((x) => x.l.includes('read phases ') && num(x.l, 'received') >= t0 && num(x.l, 'received') <= token)
    .map((x) => ({ node: x.node, receivedMs: rel(num(x.l, 'received')), exportedMs: rel(num(x.l, 'exported')) }));
  return {
    beforeMs: round(t0 - num(line, 'last')),
    sentMs: rel(num(line, 'sent')),
    copiedMs: rel(num(line, 'copied')),
    tokenMs: rel(token),
    ...(client ? { clientLastMs: rel(client[0]), clientFirstMs: rel(client[1]) } : {}),
    stages,
    reads,
  };
}

const h = new ClusterHarness('bench-migration');
const layersOf = (view: View, peerId: string) => (view.plan?.stages ?? []).filter((s) => s.peerId === peerId).reduce((t, s) => t + s.endLayer - s.startLayer, 0);
const setBudget = (n: RunningNode, bytes: number | null) =>
  fetch(`${n.apiUrl}/v1/node/memory-budget`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ bytes }) });

/** Streams a greedy answer until `onToken` says stop (or max tokens); its text and each token's arrival. */
async function stream(client: OpenAI, model: string, prompt: number[], onToken?: (i: number) => boolean | void): Promise<{ text: string; times: number[]; wall: number[] }> {
  const times: number[] = [];
  const wall: number[] = [];
  let text = '';
  const s = await client.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true } as unknown as OpenAI.CompletionCreateParamsStreaming);
  for await (const chunk of s) {
    const t = chunk.choices[0]?.text ?? '';
    if (!t) continue;
    text += t;
    times.push(performance.now());
    wall.push(Date.now());
    if (onToken?.(times.length) === true) {
      s.controller.abort();
      break;
    }
  }
  return { text, times, wall };
}

async function runMode(mode: string): Promise<Row[]> {
  const args = ['--model', modelPath, '--no-mdns', '--memory-budget', v.budget!, '--context', '2048', '--concurrency', '1', '--speculate', 'off', '--busy-threshold', '2.5', '--live-moves', mode === 'live' ? 'on' : 'off', '--log-level', 'debug'];
  const a = await h.startNode({ name: `${mode}-a`, args, timeoutMs: 120_000 });
  const b = await h.startNode({ name: `${mode}-b`, args: [...args, '--bootstrap', a.addresses[0]], timeoutMs: 120_000 });
  const c = await h.startNode({ name: `${mode}-c`, args: [...args, '--bootstrap', a.addresses[0]], timeoutMs: 120_000 });
  const nodes = [a, b, c];
  await h.waitForPipelineMembers(nodes, 60_000);
  const client = new OpenAI({ baseURL: `${a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0, timeout: 600_000 });
  const model = await a.modelId();
  const view = async () => (await a.cluster()) as View;
  const rows: Row[] = [];
  // A first request makes the plan (and warms every stage).
  await stream(client, model, [1, 2, 3]);
  for (const history of histories.flatMap((n) => Array<number>(repeats).fill(n))) {
    // The move comes some tokens after the cut (the planner notices, the new stages load): the prompt is shorter.
    const prompt = Array.from({ length: Math.max(8, history - LEAD) }, (_, i) => 10 + ((i * 37) % 480));
    const reference = await stream(client, model, prompt, (i) => i >= 500);
    let cutAt = Infinity;
    let movedAt = Infinity;
    // The node holding most layers as the cut comes (the plan may have changed with the machine's load) loses them.
    let cut: Promise<RunningNode> | null = null;
    const cutBudget = async () => {
      const now = await view();
      const victim = [...nodes].sort((x, y) => layersOf(now, y.peerId) - layersOf(now, x.peerId))[0];
      cutAt = performance.now();
      await setBudget(victim, Number(v.cut));
      return victim;
    };
    const logFrom = a.output().length;
    const logsFrom = nodes.map((n) => n.output().length);
    const moved = await stream(client, model, prompt, (i) => {
      if (i === CUT_AFTER) cut = cutBudget();
      if (movedAt === Infinity && /moved to plan/.test(a.output().slice(logFrom))) movedAt = i;
      return i >= movedAt + 10;
    });
    const gaps = moved.times.slice(1).map((t, i) => t - moved.times[i]);
    const after = gaps.map((g, i) => (moved.times[i] >= cutAt ? g : 0));
    const worst = after.indexOf(Math.max(...after));
    const sorted = [...gaps].sort((x, y) => x - y);
    const line = a.output().slice(logFrom).match(/^(\S+) .*moved to plan \S+ at a token boundary \((?:([\d.]+) MB of KV copied; the last positions in (\d+) ms, switched|\d+ tokens replayed) in (\d+) ms\)/m);
    // The first token of the new route reached the coordinator when it logged the move; the client gets it just after.
    const loggedAt = line ? Date.parse(line[1]) : NaN;
    const first = moved.wall.findIndex((t) => t >= loggedAt - 2);
    const row: Row = {
      mode,
      history: prompt.length + (first > 0 ? first : worst + 1),
      pauseMs: first > 0 ? moved.times[first] - moved.times[first - 1] : NaN,
      worstAfterCutMs: after[worst] ?? NaN,
      medianGapMs: sorted[Math.floor(sorted.length / 2)] ?? NaN,
      switchMs: line ? Number(line[4]) : null,
      switchCopyMs: line?.[3] !== undefined ? Number(line[3]) : null,
      copiedMB: line?.[2] !== undefined ? Number(line[2]) : null,
      tokenPauseMs: null,
      phases: phasesOf(a.output().slice(logFrom), nodes.map((n, i) => ({ node: n.name, text: n.output().slice(logsFrom[i]) })), first > 0 ? [moved.wall[first - 1], moved.wall[first]] : null),
      sameText: reference.text.startsWith(moved.text),
      load: loadavg()[0],
    };
    if (row.phases) row.tokenPauseMs = round(row.phases.beforeMs + row.phases.tokenMs);
    rows.push(row);
    const victim = await (cut as Promise<RunningNode> | null);
    if (!victim) throw new Error(`the answer ended before its ${CUT_AFTER}th token`);
    console.log(JSON.stringify({ ...row, tokens: moved.times.length, victim: victim.name }));
    await setBudget(victim, null);
    await h.waitFor(async () => layersOf(await view(), victim.peerId) > 0, 120_000, `${victim.name} to take layers back`, 250);
  }
  if (v.logs) {
    mkdirSync(v.logs, { recursive: true });
    for (const n of nodes) writeFileSync(join(v.logs, `${n.name}.log`), n.output());
  }
  for (const n of nodes) n.kill('SIGTERM');
  await Promise.all(nodes.map((n) => n.exited));
  return rows;
}

try {
  const all: Row[] = [];
  for (const mode of v.modes!.split(',')) all.push(...(await runMode(mode)));
  console.log('\nmode    history  pause ms  token pause ms  worst after cut  median gap ms  switch ms (copy)  KV MB  same text  load');
  for (const r of all) {
    const sw = `${r.switchMs ?? '-'}${r.switchCopyMs !== null ? ` (${r.switchCopyMs})` : ''}`;
    console.log(`${r.mode.padEnd(7)} ${String(r.history).padStart(7)} ${r.pauseMs.toFixed(0).padStart(9)} ${(r.tokenPauseMs?.toFixed(0) ?? '-').padStart(15)} ${r.worstAfterCutMs.toFixed(0).padStart(16)} ${r.medianGapMs.toFixed(0).padStart(14)} ${sw.padStart(17)} ${String(r.copiedMB ?? '-').padStart(6)}  ${r.sameText ? 'yes' : 'NO'}  ${r.load.toFixed(1)}`);
  }
  console.log('\nphases of each live switch, ms from the decision (before: since the old route\'s last token):');
  for (const r of all) {
    const p = r.phases;
    if (!p) continue;
    const stages = p.stages.map((x) => `${x.node} delta ${x.delta}: asked ${x.adoptMs}, read ${x.readMs}, counted ${x.countedMs}; step arrived ${x.arrivedMs}, ready ${x.readyMs}, started ${x.startedMs}, computed ${x.computedMs} (then ${x.laterComputeMs.join(', ')})`).join(' | ');
    const reads = p.reads.map((x) => `${x.node} ${x.receivedMs}→${x.exportedMs}`).join(', ');
    console.log(`${String(r.history).padStart(5)} pause ${r.pauseMs.toFixed(0)}: client got the last old token ${p.clientLastMs ?? '?'}, before ${p.beforeMs}, sent ${p.sentMs}, copied ${p.copiedMs}, token ${p.tokenMs}, client got it ${p.clientFirstMs ?? '?'} | ${stages} | reads ${reads || '-'}`);
  }
  if (v.json) writeFileSync(v.json, JSON.stringify(all, null, 2));
} finally {
  await h.cleanup();
}
