import { randomUUID } from 'node:crypto';
import type { Cluster, ModelShape } from '@edge-node/partitioner';
import type { ClusterMember } from '../cluster/membership.js';
import type { ClusterStatus, MemberStatus } from '../node-runtime.js';
import { generate } from '../engine/generate.js';
import { GREEDY } from '../engine/sampler.js';
import type { ExecutionRequest, TokenExecutor } from '../engine/token-executor.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameCodec } from '../network/frame-codec.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type TokenFrame } from '../pipeline/activation-frame.js';
import { clusterOf, modelShapeOf } from '../pipeline/cluster-plan.js';
import { storedBytesPerWeight } from '../model/stored-bytes-per-weight.js';
import type { PipelineExecutor, Route, StepTiming } from '../pipeline/pipeline-executor.js';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { OpenAIError, invalidRequest } from './openai-errors.js';
import { QueueWaitAbortedError } from './request-queue.js';
import { requirePipeline, type ServingContext } from './serve-generation.js';

/** The route `edge-node bench` drives: exact-length prompts, EOS ignored, greedy, every step's timing. */
export const BENCH_PATH = '/v1/edge-node/bench';

/** Most runs one bench request may ask for (each is a whole generation). */
export const MAX_BENCH_RUNS = 100;

export interface BenchRouteOptions {
  /** The node's cluster snapshot (GET /v1/cluster): members with their measured profiles and links. */
  clusterStatus: () => ClusterStatus;
  /** The nodes' frame limit (prompts above it travel in chunks). Default DEFAULT_MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
  maxBodyBytes?: number;
}

/** One network (or in-process) leg of a step: coordinator → stage 0 → … → last stage → coordinator. */
export interface BenchHop {
  from: string;
  to: string;
  /** False when both ends are this process (the frame never leaves it). */
  network: boolean;
  /** Encoded bytes of what crosses this hop for the prompt (all chunks) and for one decode step. */
  prefillBytes: number;
  decodeBytes: number;
}

export interface BenchStage {
  peerId: string;
  name: string;
  startLayer: number;
  endLayer: number;
}

export interface BenchRun {
  promptTokens: number;
  generatedTokens: number;
  ttftMs: number;
  prefillMs: number;
  prefillTokPerS: number;
  decodeMs: number;
  decodeTokPerS: number;
  totalMs: number;
  /** Wait for a pipeline slot before the run started. */
  queueWaitMs: number;
  /** Step 0 is the prefill; then one per decode step. */
  steps: StepTiming[];
}

export interface BenchResponse {
  model: string;
  coordinator: string;
  route: { planId: string; stages: BenchStage[] };
  hops: BenchHop[];
  runs: BenchRun[];
}

/** GET: what a client needs to predict this cluster's figures with the partitioner. */
export interface BenchInfo {
  model: string;
  modelShape: ModelShape;
  contextLength: number;
  coordinator: string;
  /** Members with the model, in ring order (names sorted), as the partitioner sees them. */
  members: { peerId: string; name: string }[];
  cluster: Cluster;
  /** The plan in force, if one was made. */
  route: { planId: string; stages: BenchStage[] } | null;
}

interface BenchBody {
  promptTokens: number;
  genTokens: number;
  runs: number;
  seed: number;
}

function intField(body: Record<string, unknown>, key: string, min: number, max: number, fallback?: number): number {
  const v = body[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidRequest(`"${key}" must be a whole number from ${min} to ${max}`, key);
  }
  return v;
}

function parseBody(raw: unknown, contextLength: number): BenchBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidRequest('the body must be a JSON object');
  const body = raw as Record<string, unknown>;
  const promptTokens = intField(body, 'prompt_tokens', 1, contextLength - 1);
  const genTokens = intField(body, 'gen_tokens', 1, contextLength - promptTokens);
  return { promptTokens, genTokens, runs: intField(body, 'runs', 1, MAX_BENCH_RUNS, 1), seed: intField(body, 'seed', 0, 0xffffffff, 1) };
}

/**
 * Token ids of exactly `n` positions, pseudo-random but the same for a seed, and never BOS or EOS ids (which
 * some models treat specially even in the middle of a prompt). Nothing is prepended.
 */
export function benchPromptIds(n: number, vocabSize: number, seed: number, avoid: readonly number[] = []): number[] {
  const skip = new Set(avoid);
  const ids: number[] = [];
  let s = seed >>> 0 || 1;
  while (ids.length < n) {
    // xorshift32: deterministic without a dependency.
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const id = s % vocabSize;
    if (!skip.has(id)) ids.push(id);
  }
  return ids;
}

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

/** The snapshot's members in the form the planner's clusterOf reads (profile, links keyed by the other end). */
export function membersOfStatus(status: ClusterStatus): ClusterMember[] {
  const member = (m: MemberStatus): ClusterMember => ({
    peerId: m.peerId,
    name: m.name,
    instanceId: '',
    addresses: m.addresses,
    profile: m.profile,
    load: m.load ?? null,
    stageInfo: m.stageInfo,
    links: Object.fromEntries(status.links.filter((l) => l.from === m.peerId).map((l) => [l.to, { rttMs: l.rttMs, bandwidthMBps: l.bandwidthMBps, measuredAt: l.measuredAt }])),
    version: 0,
    joinedAt: 0,
    lastSeen: 0,
  });
  return [member(status.self), ...status.peers.map(member)];
}

const ringOrder = (a: ClusterMember, b: ClusterMember) => a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId);

/**
 * GET/POST /v1/edge-node/bench. POST { prompt_tokens, gen_tokens, runs?, seed? } runs `runs` generations one after
 * another through the cluster's current plan (each waits for a pipeline slot like any request) and answers every
 * step's round trip and per-stage compute, the route, and the bytes of every hop. GET answers the model's shape and
 * the members' measured profiles (the partitioner's inputs) so a client can put predictions beside the figures.
 */
export function addBenchRoute(router: ApiRouter, ctx: ServingContext, opts: BenchRouteOptions): void {
  const routeInfo = (route: Route | undefined, members: ClusterMember[]): { planId: string; stages: BenchStage[] } | null => {
    if (!route) return null;
    const names = new Map(members.map((m) => [m.peerId, m.name]));
    return {
      planId: route.planId,
      stages: route.peers.map((peerId, i) => ({ peerId, name: names.get(peerId) ?? peerId.slice(-8), startLayer: route.ranges[i][0], endLayer: route.ranges[i][1] })),
    };
  };

  router.add('GET', BENCH_PATH, () => {
    const pipeline = requirePipeline(ctx);
    const members = membersOfStatus(opts.clusterStatus()).filter((m) => m.stageInfo?.model === pipeline.fingerprint).sort(ringOrder);
    const info: BenchInfo = {
      model: ctx.modelId,
      modelShape: modelShapeOf(pipeline.model.config, storedBytesPerWeight(pipeline.model)),
      contextLength: ctx.contextLength,
      coordinator: pipeline.router.selfId,
      members: members.map((m) => ({ peerId: m.peerId, name: m.name })),
      cluster: clusterOf(members),
      route: routeInfo(pipeline.activePlan?.route, members),
    };
    return info;
  });

  router.add('POST', BENCH_PATH, async (req, res) => {
    const pipeline = requirePipeline(ctx);
    const body = parseBody(await readJsonBody(req, opts.maxBodyBytes), ctx.contextLength);
    const config = pipeline.model.config;
    const avoid = [...(config.bosTokenId === null ? [] : [config.bosTokenId]), ...config.eosTokenIds, ...pipeline.tokenizer.eosIds];
    const prompt = benchPromptIds(body.promptTokens, Math.min(config.vocabSize, pipeline.tokenizer.vocabSize), body.seed, avoid);
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });

    const runs: BenchRun[] = [];
    let route: Route | undefined;
    for (let r = 0; r < body.runs; r++) {
      const waitStart = performance.now();
      let release: () => void;
      try {
        release = await ctx.queue.acquire(abort.signal);
      } catch (err) {
        if (err instanceof QueueWaitAbortedError) return undefined;
        throw err;
      }
      const queueWaitMs = performance.now() - waitStart;
      const recorder = new RecordingExecutor(pipeline.executor);
      try {
        const result = await generate(recorder, pipeline.tokenizer, {
          prompt,
          addBos: false,
          maxTokens: body.genTokens,
          sampling: { ...GREEDY },
          ignoreEos: true,
          contextLength: ctx.contextLength,
          signal: abort.signal,
          requestId: `bench-${randomUUID()}`,
        });
        if (result.tokens.length !== body.genTokens) {
          throw new OpenAIError(500, `the run generated ${result.tokens.length} tokens instead of ${body.genTokens}`, 'server_error', 'internal_error');
        }
        route = recorder.route ?? route;
        const t = result.timings;
        runs.push({
          promptTokens: prompt.length,
          generatedTokens: result.tokens.length,
          ttftMs: t.ttftMs,
          prefillMs: t.prefillMs,
          prefillTokPerS: t.prefillTokPerS,
          decodeMs: t.decodeMs,
          decodeTokPerS: t.decodeTokPerS,
          totalMs: t.totalMs,
          queueWaitMs,
          steps: recorder.timings,
        });
      } finally {
        release();
      }
    }
    if (!route) throw new OpenAIError(500, 'the pipeline reported no route for the bench run', 'server_error', 'internal_error');
    const coordinator = pipeline.router.selfId;
    // Rows per frame as ClusterPipeline computes them (a tenth of the frame left for the other fields).
    const maxRows = Math.max(1, Math.floor(((opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES) * 0.9) / (config.hiddenSize * 4)));
    const response: BenchResponse = {
      model: ctx.modelId,
      coordinator,
      route: routeInfo(route, membersOfStatus(opts.clusterStatus()))!,
      hops: hopBytes(route, coordinator, config.hiddenSize, prompt.length, maxRows, prompt.length + body.genTokens),
      runs,
    };
    return response;
  });
}
