// A day of a home cluster whose devices are used by people: a static plan made at 00:00 vs adaptive re-planning
// (packages/partitioner replayDay: decideReplan with threshold, payback and hysteresis, restore of the former plan,
// the time to load moved layers). Pure prediction, no devices are run.
// Uses the built package: run `npm run build` first.  Usage: node scripts/bench-adaptive-day.mjs [--json]
import { modelProfile, replayDay } from '../packages/partitioner/dist/index.js';

const GB = 1e9;
const h = 3600;
// Llama-3.2-1B shape at Q8_0-like 1 byte per weight (1.5 GB): no device below holds it with its KV cache alone.
const model = modelProfile({ name: 'Llama-3.2-1B', hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, vocabSize: 128256, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 1 });
const request = { promptTokens: 128, genTokens: 256, contextTokens: 2048, concurrency: 1 };
const wifi = { latencyMs: 4, bandwidthMBps: 40 };
const fleet = {
  devices: [
    { id: 'desktop', gflops: 400, memBandwidthGBps: 40, memoryBytes: 1.2 * GB },
    { id: 'laptop', gflops: 250, memBandwidthGBps: 30, memoryBytes: 1.0 * GB },
    { id: 'camera-hub', gflops: 60, memBandwidthGBps: 12, memoryBytes: 1.0 * GB },
    { id: 'old-laptop', gflops: 120, memBandwidthGBps: 15, memoryBytes: 0.8 * GB },
  ],
  links: [],
  defaultLink: wifi,
};
// Who uses what, when (slowdown = how much slower the device runs for the cluster then).
const day = [
  { atS: 0, device: 'camera-hub', slowdown: 1 }, // cameras idle at night: the hub's NPU-less CPU is free
  { atS: 6.5 * h, device: 'camera-hub', slowdown: 5 }, // daytime recording and motion detection
  { atS: 8 * h, device: 'laptop', slowdown: 3 }, // owner works: builds, video calls
  { atS: 12 * h, device: 'laptop', slowdown: 1 },
  { atS: 13 * h, device: 'laptop', slowdown: 4 },
  { atS: 17.5 * h, device: 'laptop', slowdown: 1 },
  { atS: 15 * h, device: 'old-laptop', slowdown: 1, present: false }, // taken to school
  { atS: 18 * h, device: 'old-laptop', slowdown: 1 },
  { atS: 19 * h, device: 'desktop', slowdown: 6 }, // gaming
  { atS: 22.5 * h, device: 'desktop', slowdown: 1 },
  { atS: 22 * h, device: 'camera-hub', slowdown: 1 },
  { atS: 20 * h, device: 'laptop', slowdown: 1, memoryBytes: 0.5 * GB }, // a browser with many tabs
  { atS: 23 * h, device: 'laptop', slowdown: 1 },
];

const r = replayDay(model, fleet, request, day, { durationS: 24 * h, noticeS: 10, loadMBps: 200 });
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(r, null, 2));
  process.exit(0);
}
const hhmm = (s) => `${String(Math.floor(s / h)).padStart(2, '0')}:${String(Math.floor((s % h) / 60)).padStart(2, '0')}`;
console.log(`${model.name}, ${fleet.devices.length} devices, a day of changing availability (${day.length} changes)\n`);
console.log('time   static ms/token  adaptive ms/token');
for (const row of r.timeline) {
  if (row.atS % 60 !== 0) continue; // rows at change times only (the +10 s notice rows are folded in)
  console.log(`${hhmm(row.atS)}  ${row.staticMsPerToken.toFixed(1).padStart(15)}  ${row.adaptiveMsPerToken.toFixed(1).padStart(17)}`);
}
console.log('\nplan changes:');
for (const c of r.changes) console.log(`  ${hhmm(c.atS)} ${c.strategy.padEnd(8)} ${c.reason}; ${c.movedLayers} layers moved (${c.fromMsPerToken.toFixed(1)} → ${c.toMsPerToken.toFixed(1)} ms/token)`);
const line = (name, s) =>
  `${name.padEnd(9)} ${(s.tokens / 1e6).toFixed(2)} M tokens, mean ${s.meanTokPerS.toFixed(1)} tok/s, worst ${s.worstMsPerToken.toFixed(1)} ms/token, ` +
  `${s.changes} changes (${s.forcedChanges} forced), ${s.movedLayers} layers moved, ${s.movingS.toFixed(1)} s loading`;
console.log(`\n${line('static', r.static)}\n${line('adaptive', r.adaptive)}`);
console.log(`adaptive / static: ${(r.adaptive.tokens / r.static.tokens).toFixed(3)}× the tokens`);
