import { ringOrder } from './plan-owner.js';
import { randomUUID } from 'node:crypto';
import type { BenchHop, BenchProbe, BenchRoute, BenchTopology, BenchTrace, StepTiming } from '../engine/bench-probe.js';
import type { ClusterMember } from '../cluster/membership.js';
import { generate } from '../engine/generate.js';
import type { GeneratorOptions } from '../engine/generator.js';
import type { NodeSpeculation } from '../engine/speculation.js';
import { GREEDY } from '../engine/sampler.js';
import type { ExecutionRequest, TokenExecutor } from '../engine/token-executor.js';
import type { ModelFile } from '../model/model-file.js';
import { storedBytesPerWeight } from '../model/stored-bytes-per-weight.js';
import { FrameCodec } from '../network/frame-codec.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type TokenFrame } from './activation-frame.js';
import { clusterOf, modelShapeOf } from './cluster-plan.js';
import type { PipelineExecutor } from './pipeline-executor.js';
import type { Route } from './route.js';

/** Passes everything to the pipeline and keeps the request's step timings and route before they are dropped. */
class RecordingExecutor implements TokenExecutor {
  timings: StepTiming[] = [];
  route: Route | undefined;
  constructor(private readonly inner: PipelineExecutor) {}
  async begin(request: ExecutionRequest): Promise<number> {
    const token = await this.inner.begin(request);
    this.route = this.inner.routeOf(request.id);
    return token;
  }
  step(requestId: string, token: number): Promise<number> {
    return this.inner.step(requestId, token);
  }
  verify(requestId: string, token: number, draft: readonly number[]): Promise<number[]> {
    return this.inner.verify(requestId, token, draft);
  }
  async end(requestId: string): Promise<void> {
    this.timings = [...this.inner.timings(requestId)];
    this.route = this.inner.routeOf(requestId) ?? this.route;
    await this.inner.end(requestId);
  }
}

/**
 * Encoded size of what crosses each leg of the ring, measured with the wire codec on frames shaped like the ones
 * the executor and the stages send (random hidden states, a request id of the API's length).
 */
export function hopBytes(route: Route, coordinator: string, hiddenSize: number, promptTokens: number, maxRowsPerFrame: number, contextLength: number): BenchHop[] {
  const codec = new FrameCodec({ maxFrameBytes: 1024 * 1024 * 1024 });
  const rid = `bench-${randomUUID()}`;
  const k = route.peers.length;
  const frameBytes = (stage: number, step: number, n: number, withOpen: boolean): number => {
    const frame: ActFrame = { t: 'act', v: ACTIVATION_FRAME_VERSION, rid, stage, step, pos: step === 0 ? 0 : promptTokens + step - 1, n, final: true };
    if (stage === 0) frame.tokens = new Int32Array(n).fill(1234);
    else {
      frame.hidden = Float32Array.from({ length: n * hiddenSize }, (_, i) => Math.sin(i));
      frame.stageMs = Array.from({ length: stage }, () => 12.345678);
    }
    if (withOpen) {
      frame.open = {
        route: route.peers,
        ranges: route.ranges,
        coordinator,
        model: route.model,
        promptTokens: Array.from({ length: promptTokens }, () => 1234),
        sampling: { ...GREEDY },
        contextLength,
        samplesDrawn: 0,
        ...(route.lora !== undefined ? { lora: route.lora } : {}),
      };
    }
    return codec.encode(frame).byteLength;
  };
  const prefill = (stage: number): number => {
    let total = 0;
    for (let r = 0; r < promptTokens; r += maxRowsPerFrame) total += frameBytes(stage, 0, Math.min(maxRowsPerFrame, promptTokens - r), r === 0);
    return total;
  };
  const token: TokenFrame = { t: 'token', v: ACTIVATION_FRAME_VERSION, rid, step: 1, token: 1234, stageMs: Array.from({ length: k }, () => 12.345678) };
  const tokenBytes = codec.encode(token).byteLength;
  const hops: BenchHop[] = [];
  const ends = [coordinator, ...route.peers, coordinator];
  for (let i = 0; i <= k; i++) {
    const from = ends[i];
    const to = ends[i + 1];
    // Legs inside one process do not exist on the wire; a 1-stage ring on its coordinator has none at all.
    if (from === to) continue;
    const toStage = i < k;
    hops.push({
      from,
      to,
      network: true,
      prefillBytes: toStage ? prefill(i) : tokenBytes,
      decodeBytes: toStage ? frameBytes(i, 1, 1, false) : tokenBytes,
    });
  }
  return hops;
}


export interface ClusterBenchProbeOptions {
  selfId: string;
  executor: PipelineExecutor;
  tokenizer: Tokenizer;
  model: ModelFile;
  fingerprint: string;
  /** This node and the members it knows (with their measured profiles and links). */
  members: () => ClusterMember[];
  /** The route of the plan in force, without recomputing it. */
  activeRoute: () => Route | null;
  contextLength: number;
  maxRowsPerFrame: number;
  /** The node's speculation policy: a run speculates as a request would (its `speculate`, else the node's default). */
  speculation: NodeSpeculation;
}

/** The bench hook of a ClusterPipeline: the ring as the partitioner sees it, and runs that report every step. */
export class ClusterBenchProbe implements BenchProbe {
  constructor(private readonly opts: ClusterBenchProbeOptions) {}

  topology(): BenchTopology {
    const { model, fingerprint } = this.opts;
    const members = this.opts.members().filter((m) => m.stageInfo?.model === fingerprint).sort(ringOrder);
    const route = this.opts.activeRoute();
    return {
      modelShape: modelShapeOf(model.config, storedBytesPerWeight(model)),
      coordinator: this.opts.selfId,
      members: members.map((m) => ({ peerId: m.peerId, name: m.name, slowdown: m.load?.slowdown ?? 1 })),
      cluster: clusterOf(members),
      route: route ? this.describe(route) : null,
    };
  }

  async run(opts: GeneratorOptions): Promise<BenchTrace> {
    const recorder = new RecordingExecutor(this.opts.executor);
    const { speculate, prediction, ...rest } = opts;
    const speculation = this.opts.speculation.optionsFor(speculate, prediction);
    const result = await generate(recorder, this.opts.tokenizer, {
      ...rest,
      addBos: opts.addBos ?? this.opts.model.config.addBosToken,
      contextLength: this.opts.contextLength,
      ...(speculation ? { speculation } : {}),
    });
    this.opts.speculation.count(result.speculation);
    const route = recorder.route;
    if (!route) throw new Error('the pipeline reported no route for the bench run');
    const promptTokens = result.promptTokens.length;
    const contextLength = promptTokens + opts.maxTokens;
    return {
      result,
      steps: recorder.timings,
      route: this.describe(route),
      hops: () => hopBytes(route, this.opts.selfId, this.opts.model.config.hiddenSize, promptTokens, this.opts.maxRowsPerFrame, contextLength),
    };
  }

  private describe(route: Route): BenchRoute {
    const names = new Map(this.opts.members().map((m) => [m.peerId, m.name]));
    return {
      planId: route.planId,
      stages: route.peers.map((peerId, i) => ({ peerId, name: names.get(peerId) ?? peerId.slice(-8), startLayer: route.ranges[i][0], endLayer: route.ranges[i][1] })),
    };
  }
}
