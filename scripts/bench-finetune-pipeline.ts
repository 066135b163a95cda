/**
 * Fine-tuning through the pipeline against one node: the same job (`POST /v1/edge-node/finetune`, the moo lines of
 * test/finetune-pipeline.test.ts) on a 1-node cluster (the partitioner's plan) and on clusters of 2 and 3 nodes
 * (splits given by hand), with real `edge-node start` processes on loopback (`--threads 1` each), one cluster at a
 * time. Prints per cluster the measured ms per step beside the training plan's predicted one (the job's report),
 * where the owner waited for each stage (its log), tokens/s and the load average; checks that every cluster gave
 * the 1-node losses and adapter, and prints the loss curve of the first.
 *
 *   npx tsx scripts/bench-finetune-pipeline.ts [--model FILE.gguf | --synthetic LAYERS] [--nodes 1,2,3]
 *                                              [--splits 2,3/1,2,2] [--steps N] [--batch B] [--repeats R]
 *                                              [--in-process]
 *
 * --in-process: before each cluster's run, the same job in this process (`edge-node finetune --model`'s code, one
 * kernel thread), its step timed as a node's report times it (the steps after the first): what the node adds.
 * Default model stories260K (splits 2,3 and 1,2,2); --synthetic LAYERS: random weights of a 768-wide SmolLM2-like
 * shape, Q8_0 (loss figures are meaningless there, the speed is the point). Two shared cores: the load average is
 * printed.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClusterHarness, type RunningNode } from '../test/support/cluster-harness.js';
import { STORIES_GGUF } from '../test/support/single-device-run.js';
import { runFinetune } from '../packages/node/src/training/finetune-job.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    synthetic: { type: 'string' },
    nodes: { type: 'string' },
    splits: { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    repeats: { type: 'string' },
    'in-process': { type: 'boolean', default: false },
  },
});
const steps = Number(v.steps ?? 100);
const repeats = Number(v.repeats ?? 2);
const sizes = (v.nodes ?? '1,2,3').split(',').map(Number);
const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Max', 'Anna'];
const ANIMALS = ['cat', 'dog', 'bird', 'cow'];
const DATA = NAMES.flatMap((n, i) => [ANIMALS[i % 4], ANIMALS[(i + 1) % 4]].map((a) => JSON.stringify({ text: `${n} saw a ${a}. The ${a} said moo moo moo.` }))).join('\n');

interface Member {
  name: string;
  profile: { gflopsPrefill: number; gflopsDecode: number; stepOverheadMs?: number; tokenOverheadMs?: number; passOverheadMs?: number };
  load: { slowdown?: number } | null;
}

interface Done {
  losses: number[];
  adapter: string;
  tokensPerSecond: number;
  seconds: number;
  stepMs: number;
  predictedStepMs: number | null;
}

function job(node: RunningNode): Promise<Done> {
  const body = JSON.stringify({ data: DATA, steps, rank: 8, alpha: 16, lr: 1e-2, batch: Number(v.batch ?? 4), seed: 5 });
  return new Promise((resolve, reject) => {
    const req = request(`${node.apiUrl}/v1/edge-node/finetune`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const last = JSON.parse(text.trim().split('\n').at(-1)!) as Done & { type: string; message?: string };
        if (last.type !== 'done') reject(new Error(`${node.name}: ${last.message ?? text.slice(0, 300)}`));
        else resolve(last);
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const h = new ClusterHarness('bench-finetune-pipeline');
/** Layers per node of a cluster of k nodes given by hand: --splits, else as even as the layers allow. */
const splitFor = (k: number, layers: number): string => {
  const given = v.splits?.split('/').find((x) => x.split(',').length === k);
  return given ?? Array.from({ length: k }, (_, i) => Math.floor(((i + 1) * layers) / k) - Math.floor((i * layers) / k)).join(',');
};
try {
  const layers = v.synthetic ? Number(v.synthetic) : 5;
  const model = v.synthetic ? await h.syntheticGguf('synthetic.gguf', { numLayers: layers, dtype: 'Q8_0', seed: 3 }) : (v.model ?? STORIES_GGUF);
  console.log(`model ${model}, ${steps} steps of ${v.batch ?? 4} sequences, --threads 1 per node`);
  let first: Done | null = null;
  const dataFile = join(h.tempDir, 'moo.jsonl');
  writeFileSync(dataFile, DATA);
  /** The same job in this process, its ms per step after the first (as a node's report measures it). */
  const inProcess = async (): Promise<number> => {
    let firstAt: number | null = null;
    let at = 0;
    const r = await runFinetune({ model, data: dataFile, out: join(h.tempDir, 'in-process.gguf'), rank: 8, alpha: 16, lr: 1e-2, steps, batch: Number(v.batch ?? 4), seed: 5, threads: 1, onProgress: () => {
      at = performance.now();
      firstAt ??= at;
    } });
    return r.losses.length > 1 && firstAt !== null ? (at - firstAt) / (r.losses.length - 1) : 1000 * r.seconds;
  };
  for (const k of sizes) {
    // One node plans its job (the training plan's split); more nodes run the split given to the first by hand.
    const split = k === 1 ? null : splitFor(k, layers);
    const nodes: RunningNode[] = [await h.startNode({ name: `k${k}n1`, args: ['--model', model, '--no-mdns', ...(split ? ['--split', split] : [])], timeoutMs: 120_000 })];
    for (let i = 2; i <= k; i++) nodes.push(await h.startNode({ name: `k${k}n${i}`, args: ['--model', model, '--no-mdns', '--bootstrap', nodes[0].addresses[0]], timeoutMs: 120_000 }));
    if (k > 1) await h.waitForPipelineMembers(nodes, 60_000);
    // The figures the plan prices each node with: its profile (rates, fixed costs) and load, and the links measured.
    const status = (await h.getJson(`${nodes[0].apiUrl}/v1/cluster`)) as { self: Member; peers: Member[]; links: { from: string; to: string; rttMs?: number }[] };
    for (const m of [status.self, ...status.peers]) {
      const p = m.profile;
      console.log(
        `  ${m.name}: prefill ${p.gflopsPrefill} GFLOP/s, decode ${p.gflopsDecode}, step ${p.stepOverheadMs ?? '–'} ms, token ${p.tokenOverheadMs ?? '–'} ms, pass ${p.passOverheadMs ?? '–'} ms; ` +
          `slowdown ${m.load?.slowdown ?? '–'}`,
      );
    }
    if (status.links.length > 0) console.log(`  links rtt: ${status.links.map((l) => `${l.rttMs?.toFixed(2) ?? '?'} ms`).join(', ')}`);
    for (let r = 0; r < repeats; r++) {
      if (v['in-process']) {
        const l0 = loadavg()[0];
        const ms = await inProcess();
        console.log(`in process (one thread), run ${r + 1}: ${ms.toFixed(1)} ms per step; load average ${l0.toFixed(1)} → ${loadavg()[0].toFixed(1)}`);
      }
      const la0 = loadavg()[0];
      const d = await job(nodes[0]);
      const la1 = loadavg()[0];
      first ??= d;
      const same = JSON.stringify(first.losses) === JSON.stringify(d.losses) && first.adapter === d.adapter;
      const predicted = d.predictedStepMs ?? null;
      const vs = predicted === null ? 'not priced' : `predicted ${predicted.toFixed(1)} ms (measured/predicted ${(d.stepMs / predicted).toFixed(2)})`;
      console.log(
        `${k} node${k === 1 ? '' : 's'} (${split ?? 'planned'}), run ${r + 1}: measured ${d.stepMs.toFixed(1)} ms per step, ${vs}; ${d.tokensPerSecond.toFixed(0)} tok/s (${d.seconds.toFixed(1)} s); ` +
          `same losses and adapter as the first: ${same}; load average ${la0.toFixed(1)} → ${la1.toFixed(1)}`,
      );
      const waited = nodes[0].output().split('\n').filter((l) => l.includes(' ms per step (')).at(-1);
      if (waited) console.log(`  owner waited per step: ${waited.slice(waited.indexOf('per step, ms: ') + 'per step, ms: '.length)}`);
    }
    for (const n of nodes) n.kill('SIGTERM');
    await Promise.all(nodes.map((n) => n.exited));
  }
  if (first) {
    const at = [...new Set([1, 2, 5, 10, 25, 50, 75, steps])].filter((s) => s <= steps);
    console.log(`loss: ${at.map((s) => `step ${s} ${first!.losses[s - 1].toFixed(4)}`).join(', ')}; first below half at step ${first.losses.findIndex((l) => l < first!.losses[0] / 2) + 1 || 'none'}`);
  }
} finally {
  await h.cleanup();
}
