import type { ClusterStatus, MemberStatus, PrefixCacheReport } from '@edge-node/node';
import { DEFAULT_API_PORT } from '@edge-node/node/settings';
import type { CliCommand } from '../cli-command.js';
import { parseCommandLine } from '../command-line.js';
import { getFromNode, nodeApi } from '../node-api.js';

const HELP = `Usage: edge-node status [--api URL] [--api-key KEY] [--json]

Shows the cluster as seen by a running node: peers, their device profiles and current load (slowdown, other
processes' CPU, free memory, effective speed), link latency/bandwidth, the plan and its recent changes.

Options:
  --api URL       the node's HTTP API (default http://127.0.0.1:${DEFAULT_API_PORT})
  --api-key KEY   the node's API key, if it was started with one (or env EDGE_NODE_API_KEY)
  --json          print the raw /v1/cluster JSON
`;

function gb(n: number): string {
  return `${(n / 1e9).toFixed(1)} GB`;
}

function memberLine(m: MemberStatus, self: boolean): string {
  const p = m.profile;
  const ranges = Array.isArray(m.stageInfo?.ranges) ? (m.stageInfo.ranges as [number, number][]) : [];
  const stage = m.stageInfo?.model ? `\n    serves ${ranges.length ? ranges.map(([a, b]) => `layers [${a}, ${b})`).join(', ') : 'no layers yet'} of ${String(m.stageInfo.model)}` : '';
  const seen = self ? ' (this node)' : ` (seen ${(m.lastSeenMsAgo / 1000).toFixed(1)} s ago)`;
  return (
    `  ${m.name} ${m.peerId}${seen}\n` +
    `    ${p.runtime}, ${p.backend} ${p.isa} × ${p.threads} threads of ${p.cores} cores${p.kvCache ? `, KV cache ${p.kvCache}` : ''}, decode ${p.gflopsDecode} GFLOP/s, prefill ${p.gflopsPrefill} GFLOP/s, ` +
    `${p.memBandwidthGBps} GB/s, memory ${gb(p.memoryBytes)}${stage}\n` +
    loadLine(m) +
    m.addresses.map((a) => `    ${a}\n`).join('')
  );
}

/** The serving figures /v1/cluster adds (api/api-metrics.ts). */
interface ServingView {
  slots: number;
  running: number;
  waiting: number;
  tokensPerSecond: number;
  batching: { steps: number; maxRequests: number; meanRows: number };
  /** Absent on nodes older than the prefix cache. */
  prefixCache?: PrefixCacheReport | null;
}

/** "load: 3.1× slower for 20 s (stage), other processes 1.2 cores, 5.3 GB free, effective 1.1 GFLOP/s, budget 0.4 GB". */
export function loadLine(m: MemberStatus): string {
  const l = m.load;
  if (!l) return '    load: not announced yet\n';
  const busy = l.slowdown > 1 ? `${l.slowdown}× slower for ${Math.max(0, Math.round((Date.now() - l.since) / 1000))} s (${l.source})` : `quiet (${l.source})`;
  const budget = l.memoryBudgetBytes < m.profile.memoryBytes ? `, budget ${gb(l.memoryBudgetBytes)}: ${l.memoryReason}` : '';
  const calibration = l.calibration !== null ? `, runs at ${(1 / l.calibration).toFixed(2)}× its profile when quiet` : '';
  // Absent (undefined) from nodes of an earlier version.
  const prompts = l.promptCalibration != null ? `, prompts at ${(1 / l.promptCalibration).toFixed(2)}×` : '';
  return `    load: ${busy}, other processes ${l.otherCpuCores.toFixed(1)} cores, ${gb(l.availableMemoryBytes)} free, effective ${m.effectiveGflops} GFLOP/s${calibration}${prompts}${budget}\n`;
}

/** The fields of the plan summary that /v1/cluster serves (pipeline/plan-summary.ts). */
interface PlanView {
  strategy: string;
  stages: { peerId: string; name: string; startLayer: number; endLayer: number; memoryBytes: number; stageMs: number }[];
  excluded: { device: string; reason: string }[];
  predicted: { ttftMs: number; tokenLatencyMs: number; throughputTokPerS: number };
  /** Absent from nodes older than the plan owner. */
  owner?: { name: string; why: string } | null;
}

function formatPlan(plan: PlanView, name: (id: string) => string): string {
  let text = `Plan (${plan.strategy}${plan.owner ? `; ${plan.owner.why}` : ''}):\n`;
  for (const st of plan.stages) {
    text += `  ${st.name.padEnd(12)} layers [${st.startLayer}, ${st.endLayer})  ${gb(st.memoryBytes)}  ${st.stageMs.toFixed(2)} ms/token\n`;
  }
  for (const e of plan.excluded) text += `  left out ${name(e.device)}: ${e.reason}\n`;
  const p = plan.predicted;
  text += `  predicted: TTFT ${p.ttftMs.toFixed(1)} ms, ${p.tokenLatencyMs.toFixed(2)} ms/token, ${p.throughputTokPerS.toFixed(1)} tok/s\n`;
  return text;
}

export function formatClusterStatus(s: ClusterStatus): string {
  const names = new Map([s.self, ...s.peers].map((m) => [m.peerId, m.name]));
  const name = (id: string) => names.get(id) ?? id.slice(-8);
  let text = `Cluster: ${s.peers.length + 1} node(s)\n`;
  text += memberLine(s.self, true);
  for (const p of s.peers) text += memberLine(p, false);
  text += `Links (${s.links.length}):\n`;
  for (const l of s.links) text += `  ${name(l.from)} → ${name(l.to)}: RTT ${l.rttMs.toFixed(2)} ms, ${l.bandwidthMBps} MB/s\n`;
  text += s.plan == null ? 'Plan: none yet (made at the first request)\n' : formatPlan(s.plan as PlanView, name);
  if (s.planDecision) text += `  last check: ${s.planDecision}\n`;
  if (s.lora) text += `LoRA adapter: ${s.lora.file} (id ${s.lora.id}, ${s.lora.pairs} pairs of rank ${s.lora.ranks.join('/')}, alpha ${s.lora.alpha}, scale ${s.lora.scale}); every stage applies its slice\n`;
  if (s.planHistory?.length) {
    text += `Plan changes (last ${s.planHistory.length}):\n`;
    for (const c of s.planHistory) text += `  ${new Date(c.at).toISOString().slice(11, 19)} ${c.reason} (layers loaded in ${(c.loadMs / 1000).toFixed(1)} s)\n`;
  }
  const serving = (s as ClusterStatus & { serving?: ServingView }).serving;
  if (serving) {
    const b = serving.batching;
    text +=
      `Serving: ${serving.running} of ${serving.slots} slots in use, ${serving.waiting} waiting, ${serving.tokensPerSecond} tok/s; ` +
      `stage steps ${b.steps}, mean ${b.meanRows} rows, at most ${b.maxRequests} requests batched together\n`;
    const pc = serving.prefixCache;
    if (pc) {
      const mib = (n: number) => (n / 2 ** 20).toFixed(1);
      text +=
        `Prefix cache: ${pc.stage.blocks} blocks, ${mib(pc.stage.bytes)} of ${mib(pc.stage.budgetBytes)} MiB, ${pc.stage.hits} hits, ${pc.stage.misses} misses, ${pc.stage.evictedBlocks} evicted; ` +
        `this node's requests took ${pc.requests.cachedTokens} prompt tokens from it in ${pc.requests.hits} requests (${pc.requests.refusals} refused)\n`;
    }
  }
  return text;
}

export const statusCommand: CliCommand = {
  name: 'status',
  async run(argv) {
    const parsed = parseCommandLine({ args: argv, options: { api: { type: 'string' }, 'api-key': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }, HELP);
    if (!parsed) return 0;
    const { values } = parsed;
    const status = (await getFromNode(nodeApi(values.api, values['api-key']), '/v1/cluster')) as ClusterStatus;
    process.stdout.write(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatClusterStatus(status));
    return 0;
  },
};
