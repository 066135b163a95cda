/**
 * A LoRA adapter through the pipeline, across `edge-node start` processes on loopback: the coordinator alone has the
 * adapter file (`--lora`); the other stage gets its slice over the control protocol (checked by SHA-256 and against
 * its own model) and the text equals `edge-node run --lora` on one device. A coordinator without the adapter keeps
 * getting the base model's text from the same stages, and a stage that cannot apply an adapter (the tfjs backend)
 * makes the request fail with that reason instead of serving base outputs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLoraAdapter } from '../packages/node/src/model/lora-adapter-file.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { randomLoraAdapter } from '../packages/node/test/support/random-lora.js';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { runSingleDevice, STORIES_GGUF, type SingleDeviceResult } from './support/single-device-run.js';

const TOKENS = 32;
const PROMPT = 'Once upon a time';

interface LoraJson {
  lora: { file: string; id: string; alpha: number; scale: number; pairs: number; ranks: number[] } | null;
  plan: { stages: { name: string; startLayer: number; endLayer: number }[] } | null;
}

describe('a LoRA adapter through a 2-node pipeline', () => {
  const h = new ClusterHarness('lora-pipeline');
  let adapterPath = '';
  let withLora: SingleDeviceResult;
  let base: SingleDeviceResult;
  let n1: RunningNode;
  let n2: RunningNode;
  afterAll(() => h.cleanup());

  beforeAll(async () => {
    const model = await openModel(STORIES_GGUF);
    try {
      // Only n1's directory holds the adapter: n2 must get its slice from n1.
      const dir = join(h.tempDir, 'adapter');
      mkdirSync(dir);
      adapterPath = join(dir, 'stories-lora.gguf');
      writeFileSync(adapterPath, writeLoraAdapter(randomLoraAdapter(model, { rank: 8, alpha: 16, seed: 21, amplitude: 0.08 }), model));
    } finally {
      await model.close();
    }
    [withLora, base] = await Promise.all([runSingleDevice(STORIES_GGUF, PROMPT, TOKENS, ['--lora', adapterPath, '--lora-scale', '1.5']), runSingleDevice(STORIES_GGUF, PROMPT, TOKENS)]);
    expect(withLora.text).not.toBe(base.text);
    n1 = await h.startNode({ name: 'n1', args: ['--model', STORIES_GGUF, '--split', '2,3', '--no-mdns', '--lora', adapterPath, '--lora-scale', '1.5'] });
    n2 = await h.startNode({ name: 'n2', args: ['--model', STORIES_GGUF, '--no-mdns', '--bootstrap', n1.addresses[0]] });
    await h.waitForPipelineMembers([n1, n2]);
  }, 120_000);

  it('gives the single-device text with the adapter; the second stage pulled and checked its slice', async () => {
    const res = await n1.complete({ prompt: PROMPT, max_tokens: TOKENS, temperature: 0 });
    expect(res.choices[0].text).toBe(withLora.text);
    expect(res.usage.completion_tokens).toBe(TOKENS);
    const status = (await n1.cluster()) as LoraJson;
    expect(status.plan?.stages.map((s) => [s.name, s.startLayer, s.endLayer])).toEqual([['n1', 0, 2], ['n2', 2, 5]]);
    expect(status.lora).toMatchObject({ file: adapterPath, alpha: 16, scale: 1.5, pairs: 35, ranks: [8] });
    expect(n2.output()).toMatch(new RegExp(`LoRA adapter ${status.lora!.id}: slice of layers \\[2, 5\\) \\(21 pairs, \\d+ bytes\\) from \\S+, checked`));
    expect(n1.output()).toMatch(/slice of layers \[0, 2\) \(14 pairs, \d+ bytes\) from this node, checked/);
  }, 60_000);

  it('serves a coordinator without the adapter the base text from the same stages', async () => {
    const res = await n2.complete({ prompt: PROMPT, max_tokens: TOKENS, temperature: 0 });
    expect(res.choices[0].text).toBe(base.text);
    expect(((await n2.cluster()) as LoraJson).lora).toBeNull();
    // And the adapted text again from n1: its stages still hold the adapted layers beside the base ones.
    expect((await n1.complete({ prompt: PROMPT, max_tokens: TOKENS, temperature: 0 })).choices[0].text).toBe(withLora.text);
  }, 60_000);

  it('fails the request with the reason when a stage cannot apply the adapter, rather than serve base outputs', async () => {
    const n3 = await h.startNode({ name: 'n3', args: ['--model', STORIES_GGUF, '--no-mdns', '--backend', 'tfjs', '--bootstrap', n1.addresses[0]] });
    const n0 = await h.startNode({ name: 'n0', args: ['--model', STORIES_GGUF, '--split', '1,2,2', '--no-mdns', '--lora', adapterPath, '--bootstrap', n1.addresses[0]] });
    await h.waitForPipelineMembers([n0, n1, n3]);
    // n0's ring by name: n0 [0,1), n1 [1,3), n2 [3,5) — n3 sorts last and is left out; make n3 a stage by stopping n2.
    n2.kill('SIGTERM');
    await n2.exited;
    const { status, json } = await h.postJson(`${n0.apiUrl}/v1/completions`, { model: await n0.modelId(), prompt: PROMPT, max_tokens: 8, temperature: 0 }, 60_000);
    expect(status).toBeGreaterThanOrEqual(500);
    expect(JSON.stringify(json)).toMatch(/cannot apply a LoRA adapter/);
  }, 90_000);
});
