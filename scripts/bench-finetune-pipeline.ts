/**
 * Fine-tuning through the pipeline against one node: the same job (`POST /v1/edge-node/finetune`, the moo lines of
 * test/finetune-pipeline.test.ts) on a 1-node cluster and on a 2-node one, alternately, with real `edge-node start`
 * processes on loopback (`--threads 1` each). Prints the loss curve of the 2-node run, tokens/s of each and the load
 * average; checks that both gave the same losses and adapter.
 *
 *   npx tsx scripts/bench-finetune-pipeline.ts [--model FILE.gguf | --synthetic LAYERS] [--split A,B] [--steps N]
 *                                              [--batch B] [--repeats R]
 *
 * Default model stories260K (split 2,3); --synthetic LAYERS: random weights of a 768-wide SmolLM2-like shape, Q8_0
 * (loss figures are meaningless there, the speed is the point). Two shared cores: the load average is printed.
 */
import { request } from 'node:http';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ClusterHarness, type RunningNode } from '../test/support/cluster-harness.js';
import { STORIES_GGUF } from '../test/support/single-device-run.js';

const { values: v } = parseArgs({
  options: { model: { type: 'string' }, synthetic: { type: 'string' }, split: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' }, repeats: { type: 'string' } },
});
const steps = Number(v.steps ?? 100);
const repeats = Number(v.repeats ?? 2);
const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Max', 'Anna'];
const ANIMALS = ['cat', 'dog', 'bird', 'cow'];
const DATA = NAMES.flatMap((n, i) => [ANIMALS[i % 4], ANIMALS[(i + 1) % 4]].map((a) => JSON.stringify({ text: `${n} saw a ${a}. The ${a} said moo moo moo.` }))).join('\n');

interface Done {
  losses: number[];
  adapter: string;
  tokensPerSecond: number;
  seconds: number;
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
try {
  const model = v.synthetic ? await h.syntheticGguf('synthetic.gguf', { numLayers: Number(v.synthetic), dtype: 'Q8_0', seed: 3 }) : (v.model ?? STORIES_GGUF);
  const split = v.split ?? (v.synthetic ? `${Math.floor(Number(v.synthetic) / 2)},${Math.ceil(Number(v.synthetic) / 2)}` : '2,3');
  const [solo, n1] = await Promise.all([
    h.startNode({ name: 'solo', args: ['--model', model, '--no-mdns'], timeoutMs: 120_000 }),
    h.startNode({ name: 'n1', args: ['--model', model, '--split', split, '--no-mdns'], timeoutMs: 120_000 }),
  ]);
  const n2 = await h.startNode({ name: 'n2', args: ['--model', model, '--no-mdns', '--bootstrap', n1.addresses[0]], timeoutMs: 120_000 });
  await h.waitForPipelineMembers([n1, n2], 60_000);
  console.log(`model ${model}, split ${split}, ${steps} steps of ${v.batch ?? 4} sequences, --threads 1 per node`);
  for (let r = 0; r < repeats; r++) {
    const la0 = loadavg()[0];
    const one = await job(solo);
    const two = await job(n1);
    const la1 = loadavg()[0];
    const same = JSON.stringify(one.losses) === JSON.stringify(two.losses) && one.adapter === two.adapter;
    console.log(
      `run ${r + 1}: 1 node ${one.tokensPerSecond.toFixed(0)} tok/s (${one.seconds.toFixed(1)} s), 2 nodes ${two.tokensPerSecond.toFixed(0)} tok/s (${two.seconds.toFixed(1)} s); ` +
        `same losses and adapter: ${same}; load average ${la0.toFixed(1)} → ${la1.toFixed(1)}`,
    );
    if (r === 0) {
      const at = [...new Set([1, 2, 5, 10, 25, 50, 75, steps])].filter((s) => s <= steps);
      console.log(`loss (2 nodes): ${at.map((s) => `step ${s} ${two.losses[s - 1].toFixed(4)}`).join(', ')}; first below half at step ${two.losses.findIndex((l) => l < two.losses[0] / 2) + 1}`);
    }
  }
} finally {
  await h.cleanup();
}
