import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../src/model/open-model.js';
import type { ModelFile } from '../src/model/model-file.js';
import { createEdgeHost, type EdgeHost } from '../src/network/edge-host.js';
import type { MessageStream } from '../src/network/message-stream.js';
import type { NodeLogger } from '../src/network/node-logger.js';
import { PROTOCOLS } from '../src/network/protocol-ids.js';
import { PeerModelFile } from '../src/weights/peer-model-file.js';
import { WeightsClient } from '../src/weights/weights-client.js';
import { WeightsProtocolError } from '../src/weights/weights-errors.js';
import { parseWeightsManifest, type WeightsReply } from '../src/weights/weights-protocol.js';
import { WeightsServer } from '../src/weights/weights-server.js';

const Q8 = '/work/shared/models/stories260k/stories260K-Q8_0.gguf';
const quiet: NodeLogger = { debug() {}, info() {}, warn() {}, error() {} };

describe('/edge-node/weights between two hosts on loopback', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'edge-weights-'));
    dirs.push(d);
    return d;
  };
  let model: ModelFile;
  let server: WeightsServer;
  let serving: EdgeHost;
  let evil: EdgeHost;
  let client: EdgeHost;
  const host = (name: string) => createEdgeHost({ dataDir: tmp(), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, name, logger: quiet });

  beforeAll(async () => {
    model = await openModel(Q8);
    [serving, evil, client] = await Promise.all([host('serving'), host('evil'), host('client')]);
    server = new WeightsServer(model, quiet, 1000); // small chunks: many frames per tensor
    await server.register(serving);
    // A peer that sends the real manifest but flips a byte of every tensor.
    await evil.handle(PROTOCOLS.weights, async (s) => {
      const stream = s as MessageStream<unknown, WeightsReply>;
      for await (const req of stream) {
        const r = req as { t: string; name?: string };
        const manifest = await server.getManifest();
        if (r.t === 'manifest') await stream.send({ t: 'manifest', manifest });
        else {
          const entry = manifest.tensors.find((t) => t.name === r.name)!;
          const bytes = (await server.readStored(model.tensors.get(entry.name)!)).slice();
          bytes[0] ^= 1;
          await stream.send({ t: 'begin', name: entry.name, byteLength: entry.byteLength, sha256: entry.sha256 });
          await stream.send({ t: 'chunk', data: bytes });
          await stream.send({ t: 'end' });
        }
      }
    });
    await client.dial(serving.addresses()[0]);
    await client.dial(evil.addresses()[0]);
  });
  afterAll(async () => {
    await Promise.all([serving, evil, client].map((h) => h?.close()));
    await server?.close();
    await model?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a PeerModelFile reads the same values as the file, fetching each tensor once into its shard cache', async () => {
    const dir = tmp();
    const peer = await PeerModelFile.fromPeers({ host: client, sources: async () => [serving.peerId], dir, log: quiet });
    expect(peer.config).toEqual(model.config);
    expect([...peer.tensors.keys()]).toEqual([...model.tensors.keys()]);
    for (const name of ['blk.1.attn_q.weight', 'blk.1.ffn_down.weight', 'token_embd.weight']) {
      expect(model.tensors.get(name)!.dtype === 'Q8_0' || name.includes('ffn_down')).toBe(true);
      expect(await peer.readTensor(name)).toEqual(await model.readTensor(name));
    }
    expect(readdirSync(join(dir, 'tensors')).length).toBe(3);
    await peer.readTensor('blk.1.attn_q.weight');
    expect(peer.fetchStats()).toMatchObject({ fetchedTensors: 3, reusedTensors: 1 });
    await peer.close();
  });

  it('rejects a tensor whose bytes do not match the manifest hash, and resets that stream', async () => {
    const c = await WeightsClient.connect(client, evil.peerId);
    const manifest = await c.manifest();
    const entry = manifest.tensors.find((t) => t.name === 'blk.0.attn_k.weight')!;
    await expect(c.tensor(entry)).rejects.toThrow(/SHA-256 [0-9a-f]{64} does not match/);
    expect(c.open).toBe(false);
    // With a good peer listed after the bad one, a PeerModelFile still gets the right bytes.
    const peer = await PeerModelFile.fromPeers({ host: client, sources: async () => [evil.peerId, serving.peerId], dir: tmp(), log: quiet });
    expect(await peer.readTensor('blk.0.attn_k.weight')).toEqual(await model.readTensor('blk.0.attn_k.weight'));
    expect(peer.fetchStats().fetchedTensors).toBe(1);
    await peer.close();
  });

  it('resets the stream of a peer that sends garbage requests', async () => {
    const stream = await client.openMessageStream<unknown, unknown>(serving.peerId, PROTOCOLS.weights);
    await stream.send({ t: 'tensor', name: '../../etc/passwd' });
    const info = await stream.closed;
    expect(info.local).toBe(false);
    expect(await stream.next()).toBeUndefined();
    // An unknown but well-formed name is an answer, not a reset.
    const c = await WeightsClient.connect(client, serving.peerId);
    const manifest = await c.manifest();
    await expect(c.tensor({ ...manifest.tensors[0], name: 'blk.99.attn_q.weight' })).rejects.toThrow(/has no tensor blk\.99/);
    expect(c.open).toBe(true);
  });

  it('refuses manifests whose sizes, dtypes or hashes are inconsistent', async () => {
    const good = await server.getManifest();
    expect(() => parseWeightsManifest(good)).not.toThrow();
    const t0 = good.tensors[0];
    const bad = (patch: object) => ({ ...good, tensors: [{ ...t0, ...patch }, ...good.tensors.slice(1)] });
    expect(() => parseWeightsManifest(bad({ byteLength: t0.byteLength + 1 }))).toThrow(WeightsProtocolError);
    expect(() => parseWeightsManifest(bad({ dtype: 'IQ2_XS' }))).toThrow(/unsupported dtype/);
    expect(() => parseWeightsManifest(bad({ sha256: 'abc' }))).toThrow(/SHA-256/);
    expect(() => parseWeightsManifest(bad({ shape: [-1] }))).toThrow(/shape/);
    expect(() => parseWeightsManifest({ ...good, tensors: [...good.tensors, t0] })).toThrow(/twice/);
    expect(() => parseWeightsManifest({ ...good, config: { ...good.config, numLayers: 0 } })).toThrow(/numLayers/);
  });
});
