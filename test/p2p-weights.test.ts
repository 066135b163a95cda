/**
 * Peer-to-peer weights across `edge-node start` processes on loopback: only node a has the model file; b and c start
 * with --model-from-peers, fetch the manifest from a and then only the tensors of the layers the plan gives them.
 * The completion must equal the single-device run, and each node's shard cache must hold exactly its layers' bytes.
 * A second part serves the Hugging Face copy from a local hub: node a downloads it by repo id, b fetches from a.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../packages/node/src/model/open-model.js';
import type { ModelFile } from '../packages/node/src/model/model-file.js';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { LocalHubServer } from './support/local-hub-server.js';
import { SHARED_MODELS, STORIES_GGUF, runSingleDevice, type SingleDeviceResult } from './support/single-device-run.js';

const TOKENS = 30;
const PROMPT = 'Once upon a time';

/** The tensors loadShardWeights reads for [start, end): the layers' tensors, plus embeddings first and norm + head last. */
function tensorsOfRange(model: ModelFile, start: number, end: number): string[] {
  const c = model.config;
  const names = [...model.tensors.keys()].filter((n) => {
    const m = /^blk\.(\d+)\./.exec(n);
    return m !== null && Number(m[1]) >= start && Number(m[1]) < end;
  });
  if (start === 0) names.push('token_embd.weight');
  if (end === c.numLayers) {
    names.push('output_norm.weight');
    if (c.tiedEmbeddings) {
      if (start !== 0) names.push('token_embd.weight');
    } else names.push('output.weight');
  }
  return names;
}

const bytesOf = (model: ModelFile, names: string[]) => names.reduce((a, n) => a + model.tensors.get(n)!.byteLength, 0);

function storedBytes(dataDir: string): { files: number; bytes: number } {
  const dir = join(dataDir, 'weights', 'tensors');
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.tensor'));
  } catch {
    // nothing fetched
  }
  return { files: names.length, bytes: names.reduce((a, n) => a + statSync(join(dir, n)).size, 0) };
}

interface PlanJson {
  plan: { stages: { name: string; startLayer: number; endLayer: number }[] } | null;
}

describe('a 3-node cluster where only one node has the model file', () => {
  const h = new ClusterHarness('p2p-weights');
  let reference: SingleDeviceResult;
  let model: ModelFile;
  let a: RunningNode;
  let b: RunningNode;
  let c: RunningNode;
  afterAll(async () => {
    await h.cleanup();
    await model?.close();
  });

  beforeAll(async () => {
    reference = await runSingleDevice(STORIES_GGUF, PROMPT, TOKENS);
    expect(reference.text.startsWith(', there was a little girl named Lily')).toBe(true);
    model = await openModel(STORIES_GGUF);
  }, 120_000);

  it('serves a request and each other node stores only its own layers', async () => {
    a = await h.startNode({ name: 'a', args: ['--model', STORIES_GGUF, '--split', '2,2,1', '--no-mdns'] });
    [b, c] = await Promise.all(
      ['b', 'c'].map((name) => h.startNode({ name, args: ['--model-from-peers', '--bootstrap', a.addresses[0], '--no-mdns'], timeoutMs: 30_000 })),
    );
    await h.waitForPipelineMembers([a, b, c], 20_000);
    const t0 = Date.now();
    const res = await a.complete({ prompt: PROMPT, max_tokens: TOKENS, temperature: 0 });
    const firstRequestMs = Date.now() - t0;
    expect(res.choices[0].text).toBe(reference.text);

    const plan = ((await a.cluster()) as PlanJson).plan!;
    const stageOf = (name: string) => plan.stages.find((s) => s.name === name)!;
    expect(plan.stages.map((s) => [s.name, s.startLayer, s.endLayer])).toEqual([['a', 0, 2], ['b', 2, 4], ['c', 4, 5]]);
    const total = [...model.tensors.values()].reduce((x, t) => x + t.byteLength, 0);
    const report: string[] = [];
    for (const n of [b, c]) {
      const s = stageOf(n.name);
      const names = tensorsOfRange(model, s.startLayer, s.endLayer);
      const stored = storedBytes(n.dataDir);
      report.push(`${n.name} [${s.startLayer},${s.endLayer}): stored ${stored.files} tensors, ${stored.bytes} bytes; its layers' tensors ${names.length}, ${bytesOf(model, names)} bytes; model ${total} bytes`);
      expect(stored.files).toBe(names.length);
      expect(stored.bytes).toBe(bytesOf(model, names));
      expect(stored.bytes).toBeLessThan(total);
    }
    expect(storedBytes(a.dataDir).files).toBe(0);
    console.log(`p2p weights (first request incl. fetch ${firstRequestMs} ms):\n  ${report.join('\n  ')}`);
    expect(b.output()).toMatch(/weights: fetched \d+ tensors/);
  });

  it('after a restart and a new plan, a node fetches only the tensors it lacks', async () => {
    const before = storedBytes(b.dataDir);
    // b restarts (same data dir) and coordinates with its own split: it now runs layers [1, 4) instead of [2, 4).
    b = await h.restartNode(b, { args: ['--model-from-peers', '--split', '1,3,1', '--bootstrap', a.addresses[0], '--bootstrap', c.addresses[0], '--no-mdns'], timeoutMs: 30_000 });
    await h.waitForPipelineMembers([a, b, c], 20_000);
    const res = await b.complete({ prompt: PROMPT, max_tokens: TOKENS, temperature: 0 });
    expect(res.choices[0].text).toBe(reference.text);
    const plan = ((await b.cluster()) as PlanJson).plan!;
    expect(plan.stages.map((s) => [s.name, s.startLayer, s.endLayer])).toEqual([['a', 0, 1], ['b', 1, 4], ['c', 4, 5]]);
    const after = storedBytes(b.dataDir);
    const layer1 = tensorsOfRange(model, 1, 2);
    expect(after.files - before.files).toBe(layer1.length);
    expect(after.bytes - before.bytes).toBe(bytesOf(model, layer1));
    // The restarted process fetched only layer 1 and reused layers 2 and 3 from disk.
    const settled = [...b.output().matchAll(/weights: fetched (\d+) tensors .* reused (\d+) /g)].at(-1)!;
    expect(Number(settled[1])).toBe(layer1.length);
    expect(Number(settled[2])).toBe(tensorsOfRange(model, 2, 4).length);
    console.log(`after re-plan: b stored ${after.files} tensors (${after.bytes} bytes), +${after.bytes - before.bytes} bytes for layer 1`);
  });
});

describe('a Hugging Face repo id on one node, weights from it on another', () => {
  const h = new ClusterHarness('p2p-weights-hub');
  let hub: LocalHubServer;
  beforeAll(async () => {
    hub = await new LocalHubServer([{ repo: 'karpathy/stories260k-hf', dir: join(SHARED_MODELS, 'stories260k-hf') }]).start();
  });
  afterAll(async () => {
    await h.cleanup();
    await hub?.close();
  });

  it('downloads by repo id with a progress line, then serves layers to a peer', async () => {
    const reference = await runSingleDevice(join(SHARED_MODELS, 'stories260k-hf'), PROMPT, TOKENS);
    const a = await h.startNode({ name: 'a', args: ['--model', 'karpathy/stories260k-hf', '--hub-endpoint', hub.url, '--split', '3,2', '--no-mdns'], timeoutMs: 30_000 });
    expect(a.output()).toMatch(/\[#{24}\] 100% 1\.06\/1\.06 MB +[\d.]+ MB\/s +ETA 0:00/);
    expect(a.output()).toMatch(/downloaded 1\.\d MB \(commit [0-9a-f]{10}\)/);
    const b = await h.startNode({ name: 'b', args: ['--model-from-peers', '--bootstrap', a.addresses[0], '--no-mdns'], timeoutMs: 30_000 });
    await h.waitForPipelineMembers([a, b], 20_000);
    const res = await a.complete({ prompt: PROMPT, max_tokens: TOKENS, temperature: 0 });
    expect(res.choices[0].text).toBe(reference.text);
    const hf = await openModel(join(SHARED_MODELS, 'stories260k-hf'));
    const names = tensorsOfRange(hf, 3, 5);
    expect(storedBytes(b.dataDir).bytes).toBe(bytesOf(hf, names));
    await hf.close();
    // A restart of a uses the cache: no request reaches the hub.
    const requests = hub.requests.length;
    const a2 = await h.restartNode(a, { args: ['--model', 'karpathy/stories260k-hf', '--hub-endpoint', hub.url, '--split', '3,2', '--no-mdns'], timeoutMs: 30_000 });
    expect(a2.output()).toMatch(/using the cached download/);
    expect(hub.requests.length).toBe(requests);
  });
});
