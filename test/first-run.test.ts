/**
 * `edge-node start` without --model, as on a fresh machine: with the Hub unreachable it serves the demo model shipped
 * inside the package (and says so, quickly); with a Hub that answers it downloads the Hub's default chat model into
 * its data dir and serves that (here a local server in the Hub's URL layout stands in for huggingface.co).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterHarness, REPO_ROOT } from './support/cluster-harness.js';
import { LocalHubServer } from './support/local-hub-server.js';
import { SHARED_MODELS } from './support/single-device-run.js';

describe('first run without --model', () => {
  const h = new ClusterHarness('first-run');
  let hub: LocalHubServer | null = null;
  afterAll(async () => {
    await h.cleanup();
    await hub?.close();
  });

  it('serves the packaged demo model when the Hub cannot be reached, and says why', async () => {
    expect(existsSync(join(REPO_ROOT, 'packages/node/models/stories260K.gguf'))).toBe(true);
    const t0 = performance.now();
    // A closed port: the probe fails at once (an unroutable address would take the 2 s probe timeout).
    const node = await h.startNode({ name: 'fresh', args: ['--no-mdns'], defaultModel: true, env: { HF_ENDPOINT: 'http://127.0.0.1:9' } });
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(node.output()).toMatch(/no --model given and the Hub at http:\/\/127\.0\.0\.1:9 is not reachable \(.+\): serving the demo model shipped with edge-node, stories260K/);
    const models = (await h.getJson(`${node.apiUrl}/v1/models`)) as { data: { id: string }[] };
    expect(models.data[0].id).toBe('stories260K');
    // --no-model still starts a relay without a model.
    const relay = await h.startNode({ name: 'relay', args: ['--no-mdns', '--no-model'], defaultModel: true });
    expect(relay.output()).not.toMatch(/no --model given/);
    expect(((await h.getJson(`${relay.apiUrl}/v1/models`)) as { data: unknown[] }).data).toEqual([]);
    const { status, json } = await h.postJson(`${node.apiUrl}/v1/chat/completions`, { model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 });
    expect(status).toBe(200);
    expect((json as { choices: { message: { content: string } }[] }).choices[0].message.content.length).toBeGreaterThan(0);
  });

  it('downloads and serves the Hub\'s default chat model when the Hub answers', async () => {
    hub = await new LocalHubServer([{ repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', dir: join(SHARED_MODELS, 'stories260k-hf') }]).start();
    const node = await h.startNode({ name: 'online', args: ['--no-mdns'], defaultModel: true, env: { HF_ENDPOINT: hub.url }, timeoutMs: 60_000 });
    expect(node.output()).toMatch(/no --model given: downloading the Hub's default chat model HuggingFaceTB\/SmolLM2-135M-Instruct/);
    expect(existsSync(join(node.dataDir, 'hub'))).toBe(true);
    const id = ((await h.getJson(`${node.apiUrl}/v1/models`)) as { data: { id: string }[] }).data[0].id;
    expect(id).toBe('SmolLM2-135M-Instruct');
    const { status } = await h.postJson(`${node.apiUrl}/v1/completions`, { model: id, prompt: 'Once', max_tokens: 4 });
    expect(status).toBe(200);
    // The second start finds it in the cache, without asking the Hub.
    await hub!.close();
    const again = await h.restartNode(node, { args: ['--no-mdns'], defaultModel: true, env: { HF_ENDPOINT: 'http://127.0.0.1:9' } });
    expect(again.output()).toMatch(/serving the Hub's default chat model HuggingFaceTB\/SmolLM2-135M-Instruct \(from the cache/);
    hub = null;
  });
});
