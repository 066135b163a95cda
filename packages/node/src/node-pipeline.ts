import type { ApiMetrics } from './api/api-metrics.js';
import { modelIdFor } from './api/openai-api.js';
import type { DeviceProfile } from './cluster/device-profile.js';
import type { DeviceWatch } from './cluster/device-watch.js';
import type { Membership } from './cluster/membership.js';
import type { ComputeBackend } from './engine/compute-backend.js';
import { LocalModel } from './engine/local-model.js';
import { defaultSlots } from './engine/request-slots.js';
import type { ModelFile } from './model/model-file.js';
import type { EdgeHost } from './network/edge-host.js';
import { DEFAULT_MAX_FRAME_BYTES } from './network/frame-codec.js';
import type { NodeLogger } from './network/node-logger.js';
import type { EdgeNodeOptions } from './node-runtime.js';
import { ActivationRouter } from './pipeline/activation-router.js';
import { ClusterPipeline } from './pipeline/cluster-pipeline.js';
import { frameLimits } from './pipeline/frame-limits.js';
import { loadTokenizer } from './tokenizer/load-tokenizer.js';

/** What a node's pipeline is wired to: the node's parts, and where its metrics go. */
export interface NodePipelineContext {
  options: EdgeNodeOptions;
  host: EdgeHost;
  membership: Membership;
  compute: ComputeBackend;
  profile: DeviceProfile;
  logger: NodeLogger;
  metrics: ApiMetrics;
  watch: DeviceWatch;
  nameOf: (peerId: string) => string;
}

/** Network hops around the ring: between consecutive stages, and to/from the coordinator when it is no stage's end. */
function ringHops(route: { peers: readonly string[] } | undefined, self: string): number {
  return route ? route.peers.length - 1 + (route.peers[0] === self ? 0 : 1) + (route.peers.at(-1) === self ? 0 : 1) : 0;
}

/**
 * The node's stage and coordinator for a model: its context and request slots (as many full-context KV caches as fit,
 * unless --parallel), the ClusterPipeline wired to the node's metrics, watch and log, started. `created` sees the
 * pipeline before it starts.
 */
export async function startNodePipeline(ctx: NodePipelineContext, model: ModelFile, source: string, created: (p: ClusterPipeline) => void): Promise<{ contextLength: number; slots: number; draftModel: LocalModel | null }> {
  const { options, logger, metrics, compute } = ctx;
  compute.checkModel(model);
  const tokenizer = await loadTokenizer(model.tokenizer);
  const contextLength = Math.min(options.contextLength ?? 4096, model.config.contextLength);
  logger.info(`model: ${modelIdFor(options.modelPath ?? model.path)} (${model.config.architecture}, ${model.config.numLayers} layers, context ${contextLength}) from ${source}`);
  let slots = options.concurrency ?? 4;
  if (options.concurrency === undefined) {
    const c = model.config;
    const s = defaultSlots({
      memoryBytes: ctx.profile.memoryBytes,
      weightBytes: [...model.tensors.values()].reduce((sum, t) => sum + t.byteLength, 0),
      numLayers: c.numLayers,
      kvDim: c.numKvHeads * c.headDim,
      contextLength,
      kvCache: compute.kvCache,
    });
    slots = s.slots;
    logger.info(`slots: ${s.reason} (--parallel N to set)`);
  }
  let draftModel: LocalModel | null = null;
  if (options.draftModelPath !== undefined) {
    draftModel = await LocalModel.open(options.draftModelPath, { compute, contextLength });
    logger.info(`draft model: ${modelIdFor(options.draftModelPath)} (${draftModel.config.numLayers} layers), for speculative decoding`);
  }
  const draft = draftModel?.asDraftFor(tokenizer, contextLength);
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  // One router for the node's stage and its coordinator: each gets its own kinds of frame from it.
  const router = new ActivationRouter(ctx.host, frameLimits(model.config, maxFrameBytes, contextLength), logger);
  const pipeline: ClusterPipeline = new ClusterPipeline({
    host: ctx.host,
    router,
    membership: ctx.membership,
    log: logger,
    model,
    tokenizer,
    compute,
    contextLength,
    concurrency: slots,
    maxFrameBytes,
    ...(options.prefixCacheBytes !== undefined ? { prefixCacheBytes: options.prefixCacheBytes } : {}),
    ...(options.speculate !== undefined ? { speculate: options.speculate } : {}),
    ...(options.liveMoves !== undefined ? { liveMoves: options.liveMoves } : {}),
    ...(draft ? { draftModel: draft } : {}),
    ...(options.split ? { split: options.split } : {}),
    onStageStep: (rows, requests) => metrics.observeBatch(rows, requests),
    onStep: (rid, timing) => {
      const route = pipeline.executor.routeOf(rid);
      metrics.observeStep(timing, route, ringHops(route, ctx.host.peerId));
    },
    onRecovery: (e) => {
      metrics.observeRecovery(e);
      logger.warn(
        `request ${e.requestId}: recovered from the loss of ${ctx.nameOf(e.lostPeer)} in ${e.recoveryMs.toFixed(0)} ms ` +
          `(plan ${e.oldPlan} → ${e.newPlan}, ${e.replayedTokens} tokens replayed)`,
      );
    },
    onRecoveryFailed: () => metrics.observeRecoveryFailure(),
    observeCompute: (measured, expected, profile) => ctx.watch.observeCompute(measured, expected, profile),
    onMigrate: (e) => {
      metrics.observeMove(e);
      logger.info(`request ${e.requestId}: moved to plan ${e.newPlan} at a token boundary (${e.copiedBytes > 0 || e.replayedTokens === 0 ? `${(e.copiedBytes / 1e6).toFixed(2)} MB of KV copied; the last positions in ${(e.switchCopyMs ?? 0).toFixed(0)} ms, switched` : `${e.replayedTokens} tokens replayed`} in ${e.ms.toFixed(0)} ms)`);
    },
    ...(options.replanPolicy ? { replanPolicy: options.replanPolicy } : {}),
  });
  created(pipeline);
  await pipeline.start();
  return { contextLength, slots, draftModel };
}
