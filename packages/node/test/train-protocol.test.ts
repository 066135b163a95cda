/**
 * `/edge-node/train/1.0.0` between hosts on loopback: an owner with layers [0, 2) here and a stage with [2, 5) over
 * the protocol give one device's losses and adapter to the bit, and so do three stages (1 + 2 + 2 layers); every frame either way is captured and holds
 * only hidden states, gradients, scalars and (on export) A and B — no token id, label or logit; bad frames are
 * answered with their reason; a stage that goes away fails the job with its name.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelEnds } from '../src/engine/shard-weights.js';
import { createEdgeHost, type EdgeHost } from '../src/network/edge-host.js';
import type { MessageStream } from '../src/network/message-stream.js';
import type { NodeLogger } from '../src/network/node-logger.js';
import { PROTOCOLS } from '../src/network/protocol-ids.js';
import { RemoteRequestError, RequestChannel } from '../src/network/request-channel.js';
import { modelFingerprint } from '../src/pipeline/cluster-plan.js';
import { RemoteTrainingStage, TrainingStageLostError } from '../src/pipeline/train-client.js';
import { trainFrameLimits } from '../src/pipeline/train-frames.js';
import { TrainServer } from '../src/pipeline/train-server.js';
import { frozenEnds, trainShape, type FrozenEnds } from '../src/training/frozen-model.js';
import { KernelGemm } from '../src/training/kernel-gemm.js';
import { loraArrays, targetDims } from '../src/training/lora-set.js';
import { pipelinedStep } from '../src/training/pipelined-step.js';
import { quantisedFrozen } from '../src/training/quantised-frozen.js';
import { openStageTrainingJob } from '../src/training/stage-training-job.js';
import { LocalTrainingStage, type TrainingStage } from '../src/training/training-stage.js';
import type { TrainSequence } from '../src/training/transformer-grad.js';
import { LORA_PROJECTIONS } from '../src/model/lora-adapter.js';
import { closeStories, openStories, STORIES_PROMPT, type StoriesEngine } from './support/stories-model.js';

const quiet: NodeLogger = { debug() {}, info() {}, warn() {}, error() {} };
const PARAMS = { rank: 4, alpha: 8, lr: 1e-2, seed: 3 };
const BATCH: TrainSequence[] = [
  { tokens: Int32Array.from(STORIES_PROMPT), lossMask: STORIES_PROMPT.slice(1).map((_, i) => i >= 3) },
  { tokens: Int32Array.from([1, 403, 407, 261, 378, 430, 260]), lossMask: [true, true, true, true, true, true] },
  { tokens: Int32Array.from([1, 290, 344, 417, 275, 12, 403, 407]), lossMask: [false, true, true, true, true, true, true] },
];

describe('/edge-node/train between two hosts', () => {
  const dirs: string[] = [];
  let eng: StoriesEngine;
  let owner: EdgeHost;
  let stageHost: EdgeHost;
  let server: TrainServer;
  let ends: FrozenEnds;
  const sent: unknown[] = [];
  const received: unknown[] = [];
  const host = (name: string) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'edge-train-'));
    dirs.push(dataDir);
    return createEdgeHost({ dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, name, logger: quiet });
  };
  const dims = () => LORA_PROJECTIONS.map((t) => targetDims(trainShape(eng.model.config, eng.model.ropeLayout), t));
  const fingerprint = () => modelFingerprint(eng.model.config);

  beforeAll(async () => {
    eng = await openStories();
    [owner, stageHost] = await Promise.all([host('owner'), host('stage')]);
    server = new TrainServer({ host: stageHost, model: eng.model, fingerprint: fingerprint(), limits: trainFrameLimits(eng.model.config, 256, 1 << 20), threads: 1, refusal: null, log: quiet });
    await server.start();
    await owner.dial(stageHost.addresses()[0]);
    // Every message the owner sends or receives on a train stream, as it goes on the wire.
    const open = owner.openMessageStream.bind(owner);
    owner.openMessageStream = (async (peerId: string, protocol: string, o?: { signal?: AbortSignal }) => {
      const s = (await open(peerId, protocol, o)) as MessageStream<unknown, unknown>;
      if (protocol !== PROTOCOLS.train) return s;
      const send = s.send.bind(s);
      s.send = (m: unknown) => {
        sent.push(m);
        return send(m);
      };
      const iterate = s[Symbol.asyncIterator].bind(s);
      s[Symbol.asyncIterator] = () => {
        const it = iterate();
        return { next: async () => {
          const r = await it.next();
          if (!r.done) received.push(r.value);
          return r;
        } };
      };
      return s;
    }) as EdgeHost['openMessageStream'];
    const gemm = await KernelGemm.create(eng.runtime);
    ends = frozenEnds(await loadModelEnds(eng.model, eng.runtime), eng.model.config, eng.model.ropeLayout, gemm, (w) => quantisedFrozen(eng.runtime, w));
  });
  afterAll(async () => {
    await server?.stop();
    await Promise.all([owner, stageHost].map((h) => h?.close()));
    await closeStories(eng ?? {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function steps(stages: TrainingStage[], after: (stages: TrainingStage[]) => Promise<void> = async () => {}) {
    const results = [];
    for (let s = 0; s < 3; s++) results.push(await pipelinedStep(ends, stages, BATCH, 1));
    await after(stages);
    const slices = (await Promise.all(stages.map((s) => s.exportSlice()))).flat();
    await Promise.all(stages.map((s) => s.close()));
    return { results, arrays: loraArrays({ rank: 4, alpha: 8, layers: slices }) as Float32Array[] };
  }

  it('2 layers here and 3 over the protocol give one device\'s losses and adapter bits; the wire holds only float tensors', async () => {
    const whole = await openStageTrainingJob(eng.model, { startLayer: 0, endLayer: 5 }, PARAMS, 1);
    const one = await steps([new LocalTrainingStage('one', 0, 5, whole.trainer, () => whole.close())]);
    const mine = await openStageTrainingJob(eng.model, { startLayer: 0, endLayer: 2 }, PARAMS, 1);
    // The remote stage keeps both micro-batches in flight (the owner's memory allows it; its own keeps one): the same bits.
    const remote = await RemoteTrainingStage.open(owner, { peerId: stageHost.peerId, name: 'stage' }, { startLayer: 2, endLayer: 5 }, 'job-1', fingerprint(), { ...PARAMS, keep: 2 }, dims());
    const two = await steps([new LocalTrainingStage('owner', 0, 2, mine.trainer, () => mine.close()), remote], async (stages) => {
      // A checkpoint over the wire, and a stage opened from it holds the same state.
      const state = await stages[1].exportState();
      const again = await RemoteTrainingStage.open(owner, { peerId: stageHost.peerId, name: 'stage' }, { startLayer: 2, endLayer: 5 }, 'job-1b', fingerprint(), PARAMS, dims(), state);
      expect(await again.exportState()).toEqual(state);
      expect(state.t).toBe(3);
      await again.close();
    });
    expect(two.results).toEqual(one.results);
    expect(one.results[2].loss).toBeLessThan(one.results[0].loss);
    const bits = (a: Float32Array[]) => a.map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length)));
    expect(bits(two.arrays)).toEqual(bits(one.arrays));

    // The wire: requests and replies in envelopes; the only arrays are Float32Arrays of whole hidden-state rows (64
    // values each; the forward's and backward's, of T − 1 rows of a sequence) or the stage's A and B (and AdamW's
    // moments of them) on export, in a checkpoint and in an open from one.
    const H = eng.model.config.hiddenSize;
    const lengths = new Set(BATCH.map((s) => (s.tokens.length - 1) * H));
    const sliceLengths = new Set(dims().flatMap((d) => [4 * d.inDim, 4 * d.outDim]));
    const keys = new Set(['k', 'id', 'body', 'op', 'job', 'model', 'startLayer', 'endLayer', 'rank', 'alpha', 'lr', 'seed', 'keep', 'mb', 'rows', 'x', 'grad', 'start', 'clipScale', 'ok', 'parameters', 'y', 'sum', 'arrays', 'resume', 't', 'params', 'm', 'v']);
    const arrays: Float32Array[] = [];
    const walk = (v: unknown, inExport: boolean): void => {
      if (ArrayBuffer.isView(v)) {
        expect(v).toBeInstanceOf(Float32Array);
        const f = v as Float32Array;
        arrays.push(f);
        expect(inExport ? sliceLengths.has(f.length) : lengths.has(f.length)).toBe(true);
      } else if (Array.isArray(v)) for (const x of v) walk(x, true);
      else if (typeof v === 'object' && v !== null) {
        for (const [k, x] of Object.entries(v)) {
          expect(keys.has(k), `field ${k}`).toBe(true);
          if (typeof x === 'string') expect(['k', 'op', 'job', 'model']).toContain(k);
          walk(x, inExport);
        }
      } else expect(['number', 'string', 'boolean'].includes(typeof v) || v === null).toBe(true);
    };
    for (const m of [...sent, ...received]) walk(m, false);
    // Forwards and backwards of 3 steps × 3 sequences, each way.
    expect(arrays.filter((a) => lengths.has(a.length)).length).toBe(3 * 3 * 4);
    expect(sent.length).toBeGreaterThan(0);
    expect(received.length).toBe(sent.length);
  });

  it('three stages (1 layer here, 2 and 2 on two other hosts) give one device\'s losses and adapter bits too', async () => {
    const third = await host('third');
    const s3 = new TrainServer({ host: third, model: eng.model, fingerprint: fingerprint(), limits: trainFrameLimits(eng.model.config, 256, 1 << 20), threads: 1, refusal: null, log: quiet });
    await s3.start();
    await owner.dial(third.addresses()[0]);
    try {
      const whole = await openStageTrainingJob(eng.model, { startLayer: 0, endLayer: 5 }, PARAMS, 1);
      const one = await steps([new LocalTrainingStage('one', 0, 5, whole.trainer, () => whole.close())]);
      const mine = await openStageTrainingJob(eng.model, { startLayer: 0, endLayer: 1 }, PARAMS, 1);
      const b = await RemoteTrainingStage.open(owner, { peerId: stageHost.peerId, name: 'stage' }, { startLayer: 1, endLayer: 3 }, 'job-3', fingerprint(), PARAMS, dims());
      const c = await RemoteTrainingStage.open(owner, { peerId: third.peerId, name: 'third' }, { startLayer: 3, endLayer: 5 }, 'job-3', fingerprint(), PARAMS, dims());
      const three = await steps([new LocalTrainingStage('owner', 0, 1, mine.trainer, () => mine.close()), b, c]);
      expect(three.results).toEqual(one.results);
      const bits = (a: Float32Array[]) => a.map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length)));
      expect(bits(three.arrays)).toEqual(bits(one.arrays));
    } finally {
      await s3.stop();
      await third.close();
    }
  });

  it('answers bad frames with their reason and keeps the stream', async () => {
    const stream = await owner.openMessageStream(stageHost.peerId, PROTOCOLS.train);
    const ch = new RequestChannel<unknown, unknown, never>(stream as never, { timeoutMs: 10_000 });
    const refused = async (body: unknown) => {
      const err = await ch.request(body).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(RemoteRequestError);
      return (err as Error).message;
    };
    expect(await refused({ op: 'tokens', job: 'j' })).toMatch(/unknown op "tokens"/);
    expect(await refused({ op: 'forward', job: 'j', mb: 0, rows: 2, x: new Float32Array(64) })).toMatch(/"x" has 64 values; 2 hidden-state rows of 64 are 128/);
    expect(await refused({ op: 'forward', job: 'j', mb: 0, rows: 100_000, x: new Float32Array(64) })).toMatch(/"rows" must be an integer from 1 to 256/);
    expect(await refused({ op: 'forward', job: 'j', mb: 0, rows: 1, x: Int32Array.from({ length: 64 }, () => 7) })).toMatch(/must be a Float32Array/);
    expect(await refused({ op: 'forward', job: 'j', mb: 0, rows: 1, x: new Float32Array(64).fill(Number.NaN) })).toMatch(/not finite/);
    expect(await refused({ op: 'backward', job: 'j', mb: 5, grad: new Float32Array(64) })).toMatch(/has not gone forward here/);
    expect(await refused({ op: 'step', job: 'j', clipScale: null })).toMatch(/no job j is open here/);
    expect(await refused({ op: 'open', job: 'j', model: 'other', startLayer: 0, endLayer: 9, rank: 4, alpha: 8, lr: 1, seed: 0 })).toMatch(/"endLayer" must be an integer from 1 to 5/);
    expect(await refused({ op: 'open', job: 'j', model: 'other', startLayer: 0, endLayer: 2, rank: 4, alpha: 8, lr: 1, seed: 0 })).toMatch(/another model/);
    expect(await refused({ op: 'open', job: 'j', model: 'other', startLayer: 0, endLayer: 2, rank: 4, alpha: 8, lr: 1, seed: 0, keep: 0 })).toMatch(/"keep" must be an integer from 1 to 64/);
    // Still answering on the same stream.
    expect(await ch.request({ op: 'open', job: 'j', model: fingerprint(), startLayer: 0, endLayer: 2, rank: 2, alpha: 2, lr: 0.1, seed: 0 })).toMatchObject({ ok: true });
    expect(await ch.request({ op: 'close', job: 'j' })).toEqual({ ok: true });
    await ch.close();
  });

  it('a stage that goes away fails the job with its name, and nothing waits', async () => {
    const gone = await host('gone');
    const s2 = new TrainServer({ host: gone, model: eng.model, fingerprint: fingerprint(), limits: trainFrameLimits(eng.model.config, 256, 1 << 20), threads: 1, refusal: null, log: quiet });
    await s2.start();
    await owner.dial(gone.addresses()[0]);
    const mine = await openStageTrainingJob(eng.model, { startLayer: 0, endLayer: 2 }, PARAMS, 1);
    const remote = await RemoteTrainingStage.open(owner, { peerId: gone.peerId, name: 'gone' }, { startLayer: 2, endLayer: 5 }, 'job-2', fingerprint(), PARAMS, dims());
    const stages = [new LocalTrainingStage('owner', 0, 2, mine.trainer, () => mine.close()), remote];
    await pipelinedStep(ends, stages, BATCH, 1);
    await s2.stop();
    await gone.close();
    const t0 = performance.now();
    const err = await pipelinedStep(ends, stages, BATCH, 1).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingStageLostError);
    expect((err as Error).message).toMatch(/stage gone \(layers \[2, 5\)\) was lost mid-job/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    await mine.close();
  });
});
