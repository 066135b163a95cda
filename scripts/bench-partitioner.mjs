// Partitioner benchmark: predicted per-token latency of `optimal` vs exo's memory-weighted split on several fleets,
// the fast planner's gap to the exact one on small fleets, and planning time for 1,000 devices.
// Uses the built package: run `npm run build` first.  Usage: npm run bench:partitioner
import { planPipeline, modelProfile, ModelDoesNotFitError } from '../packages/partitioner/dist/index.js';

let seed = 20250;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const uniform = (a, b) => a + rnd() * (b - a);

const llama8b = (bpw) => modelProfile({ name: 'Llama-3-8B', hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 128256, tiedEmbeddings: false, attentionBias: false, bytesPerWeight: bpw });
const llama70b = (bpw) => modelProfile({ name: 'Llama-3-70B', hiddenSize: 8192, intermediateSize: 28672, numLayers: 80, numHeads: 64, numKvHeads: 8, headDim: 128, vocabSize: 128256, tiedEmbeddings: false, attentionBias: false, bytesPerWeight: bpw });
const request = { promptTokens: 128, genTokens: 128, contextTokens: 2048, concurrency: 1 };
const GB = 1e9;

// Smartphones per ../shared/notes/edge-fleet.md: 0.05-4.95 TFLOPS peak, 50-77 GB/s; 8-16 GB phones of which
// about half is usable; Wi-Fi: a few ms, tens of MB/s.
function phone(i) {
  return { id: `phone${i}`, gflops: uniform(50, 4950), memBandwidthGBps: uniform(50, 77), memoryBytes: uniform(3, 8) * GB };
}
const wifi = { latencyMs: 5, bandwidthMBps: 30 };

const home = {
  name: 'home mix (desktop, 2 laptops, 2 phones; Wi-Fi)',
  cluster: {
    devices: [
      { id: 'desktop', gflops: 800, memBandwidthGBps: 60, memoryBytes: 24 * GB },
      { id: 'laptop-m2', gflops: 600, memBandwidthGBps: 100, memoryBytes: 12 * GB },
      { id: 'laptop-x86', gflops: 300, memBandwidthGBps: 50, memoryBytes: 10 * GB },
      { id: 'phone-a', gflops: 1500, memBandwidthGBps: 60, memoryBytes: 5 * GB },
      { id: 'phone-b', gflops: 400, memBandwidthGBps: 40, memoryBytes: 3 * GB },
    ],
    links: [{ from: 'desktop', to: 'laptop-m2', latencyMs: 2, bandwidthMBps: 60 }],
    defaultLink: wifi,
  },
};

function phoneFleet(n) {
  return { name: `${n} phones (edge-fleet figures)`, cluster: { devices: Array.from({ length: n }, (_, i) => phone(i)), links: [], defaultLink: wifi } };
}

function run(profile, cluster, strategy) {
  const t0 = performance.now();
  try {
    const plan = planPipeline(profile, cluster, request, { strategy, objective: 'latency' });
    return { plan, ms: performance.now() - t0 };
  } catch (e) {
    if (e instanceof ModelDoesNotFitError) return { plan: null, ms: performance.now() - t0, error: e };
    throw e;
  }
}

const rows = [];
const cases = [
  [home, llama8b(2), 'f16'],
  [home, llama70b(0.5625), 'Q4_0'],
  [phoneFleet(8), llama8b(2), 'f16'],
  [phoneFleet(8), llama8b(0.5625), 'Q4_0'],
  [phoneFleet(32), llama70b(0.5625), 'Q4_0'],
  [phoneFleet(64), llama70b(2), 'f16'],
];
for (const [fleet, profile, dtype] of cases) {
  const opt = run(profile, fleet.cluster, 'optimal');
  const mw = run(profile, fleet.cluster, 'memory-weighted');
  const eq = run(profile, fleet.cluster, 'equal');
  const tok = (r) => (r.plan && r.plan.fitsInMemory ? r.plan.cost.tokenLatencyMs : null);
  const o = tok(opt);
  const m = tok(mw);
  const q = tok(eq);
  rows.push({
    fleet: fleet.name,
    model: `${profile.name} ${dtype}`,
    'optimal ms/tok': o === null ? 'does not fit' : o.toFixed(1),
    'mem-weighted ms/tok': m === null ? (mw.plan ? 'OOM' : 'does not fit') : m.toFixed(1),
    'ratio mw/opt': o && m ? (m / o).toFixed(2) : '-',
    'equal ms/tok': q === null ? (eq.plan ? 'OOM' : '-') : q.toFixed(1),
    'devices used': opt.plan ? `${opt.plan.stages.length}/${fleet.cluster.devices.length} (${opt.plan.strategy})` : '-',
    'plan ms': opt.ms.toFixed(0),
  });
}
console.log('Predicted per-token latency, latency objective (prompt 128, gen 128, 2048-token context reserved, 1 request):');
console.table(rows);

// Fast planner vs exact on small fleets.
const gaps = [];
for (let t = 0; t < 24; t++) {
  const n = 3 + (t % 4);
  const cluster = { devices: Array.from({ length: n }, (_, i) => phone(i)), links: [], defaultLink: { latencyMs: uniform(1, 10), bandwidthMBps: uniform(10, 80) } };
  const profile = t % 2 ? llama8b(0.5625) : llama8b(1.0625);
  for (const objective of ['latency', 'throughput']) {
    const r = { ...request, concurrency: objective === 'throughput' ? 4 : 1 };
    try {
      const exact = planPipeline(profile, cluster, r, { strategy: 'exact', objective });
      const fast = planPipeline(profile, cluster, r, { strategy: 'fast', objective });
      gaps.push({ objective, gap: fast.cost.objectiveValue / exact.cost.objectiveValue - 1 });
    } catch (e) {
      if (!(e instanceof ModelDoesNotFitError)) throw e;
    }
  }
}
for (const objective of ['latency', 'throughput']) {
  const g = gaps.filter((x) => x.objective === objective).map((x) => x.gap).sort((a, b) => a - b);
  const mean = g.reduce((s, x) => s + x, 0) / g.length;
  console.log(`fast vs exact (${objective}), ${g.length} phone fleets of 3-6 devices, Llama-3-8B shape: mean gap ${(mean * 100).toFixed(2)}%, max ${(g[g.length - 1] * 100).toFixed(2)}%, equal to exact in ${g.filter((x) => x < 1e-9).length}`);
}

// 1,000 devices.
for (const [profile, dtype] of [[llama70b(0.5625), 'Q4_0'], [llama70b(2), 'f16']]) {
  const cluster = { devices: Array.from({ length: 1000 }, (_, i) => phone(i)), links: [], defaultLink: wifi };
  for (const objective of ['latency', 'throughput']) {
    const t0 = performance.now();
    const plan = planPipeline(profile, cluster, { ...request, concurrency: objective === 'throughput' ? 16 : 1 }, { objective });
    const ms = performance.now() - t0;
    console.log(`1,000 phones, ${profile.name} ${dtype}, ${objective}: planned in ${ms.toFixed(0)} ms (${plan.strategy}); ${plan.stages.length} devices used; ` +
      `${plan.cost.tokenLatencyMs.toFixed(1)} ms/token, ${plan.cost.throughputTokPerS.toFixed(2)} tok/s`);
  }
}
