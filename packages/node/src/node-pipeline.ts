import type { ApiMetrics } from './api/api-metrics.js';
import { modelIdFor } from './api/openai-api.js';
import type { DeviceProfile } from './cluster/device-profile.js';
import type { DeviceWatch } from './cluster/device-watch.js';
import { servedContextLength, type ClusterNode, type ServeSettings } from './cluster-node.js';
import type { ComputeBackend } from './engine/compute-backend.js';
import { DraftModelError } from './engine/draft-model.js';
import { LocalModel } from './engine/local-model.js';
import { defaultSlots } from './engine/request-slots.js';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readLoraAdapter } from './model/lora-adapter-file.js';
import { LoraAdapterError } from './model/model-errors.js';
import type { ModelFile } from './model/model-file.js';
import { resolveModelSource } from './model/model-source.js';
import { CoordinatorLora } from './pipeline/lora-slices.js';
import type { NodeLogger } from './network/node-logger.js';
import type { EdgeNodeOptions } from './node-runtime.js';
import { loadTokenizer } from './tokenizer/load-tokenizer.js';

/** What a node's pipeline is wired to: the node's parts, and where its metrics go. */
export interface NodePipelineContext {
  options: EdgeNodeOptions;
  cluster: ClusterNode;
  /** This node's peer id (the start of the rings it coordinates). */
  selfId: string;
  compute: ComputeBackend;
  profile: DeviceProfile;
  logger: NodeLogger;
  metrics: ApiMetrics;
  watch: DeviceWatch;
  nameOf: (peerId: string) => string;
}

/** What a node serves: the model's path, its context and request slots, and the draft model (closed with the node). */
export interface ServedModel {
  modelPath: string;
  contextLength: number;
  slots: number;
  draftModel: LocalModel | null;
}

/** Network hops around the ring: between consecutive stages, and to/from the coordinator when it is no stage's end. */
function ringHops(route: { peers: readonly string[] } | undefined, self: string): number {
  return route ? route.peers.length - 1 + (route.peers[0] === self ? 0 : 1) + (route.peers.at(-1) === self ? 0 : 1) : 0;
}

/**
 * The node's stage and coordinator for a model: its context and request slots (as many full-context KV caches as fit,
 * unless --parallel), the node's pipeline wired to its metrics, watch and log, started (ClusterNode.serve).
 */
export async function startNodePipeline(ctx: NodePipelineContext, model: ModelFile, source: string): Promise<ServedModel> {
  const { options, logger, compute } = ctx;
  compute.checkModel(model);
  const tokenizer = await loadTokenizer(model.tokenizer);
  const contextLength = servedContextLength(model.config, options.contextLength);
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
    draftModel = await LocalModel.open(await draftModelSource(options.draftModelPath, options, logger), { compute, contextLength });
    logger.info(`draft model: ${modelIdFor(options.draftModelPath)} (${draftModel.config.numLayers} layers), for speculative decoding`);
  }
  const draft = draftModel?.asDraftFor(tokenizer, contextLength);
  const lora = options.lora ? await coordinatorLora(options.lora, model, compute, logger) : null;
  await ctx.cluster.serve(model, tokenizer, { contextLength, concurrency: slots, ...(options.maxFrameBytes ? { maxFrameBytes: options.maxFrameBytes } : {}) }, {
    ...(options.prefixCacheBytes !== undefined ? { prefixCacheBytes: options.prefixCacheBytes } : {}),
    ...(options.speculate !== undefined ? { speculate: options.speculate } : {}),
    ...(options.liveMoves !== undefined ? { liveMoves: options.liveMoves } : {}),
    ...(draft ? { draftModel: draft } : {}),
    ...(lora ? { lora } : {}),
    ...(options.split ? { split: options.split } : {}),
    ...(options.replanPolicy ? { replanPolicy: options.replanPolicy } : {}),
    ...pipelineMetrics(ctx),
  });
  return { contextLength, slots, draftModel, modelPath: model.path };
}

/**
 * `--draft-model`: a file or folder, or a Hugging Face repo id downloaded into (or read from) the node's cache as
 * `--model`'s is; a failure (offline and not cached, no such repo) says it was the draft model's.
 */
async function draftModelSource(value: string, options: EdgeNodeOptions, logger: NodeLogger): Promise<string> {
  try {
    return await resolveModelSource(value, options.dataDir, options.hub, logger);
  } catch (err) {
    throw new DraftModelError(`--draft-model ${value}: ${(err as Error).message}`, { cause: err });
  }
}

/** `--lora`: the adapter read and checked against the model, with its id (file digest and scale) for the cluster. */
async function coordinatorLora(o: { path: string; scale: number }, model: ModelFile, compute: ComputeBackend, logger: NodeLogger): Promise<CoordinatorLora> {
  if (compute.name !== 'kernels') throw new LoraAdapterError(o.path, `the ${compute.name} backend cannot apply a LoRA adapter; serve it with the default kernels backend`);
  const bytes = await readFile(o.path).catch((err: NodeJS.ErrnoException) => {
    throw new LoraAdapterError(o.path, err.code === 'ENOENT' ? 'no such file' : `cannot be read (${err.code ?? err.message})`);
  });
  const adapter = await readLoraAdapter(bytes, model, o.path);
  const lora = new CoordinatorLora(adapter, o.scale, o.path, createHash('sha256').update(bytes).digest('hex'), model);
  logger.info(`LoRA adapter: ${o.path} (${adapter.tensors.size} pairs, alpha ${adapter.alpha}, scale ${o.scale}; id ${lora.id}); every stage applies its slice`);
  return lora;
}

/** The pipeline's events, into the node's metrics, device watch and log. */
function pipelineMetrics(ctx: NodePipelineContext): ServeSettings {
  const { metrics, logger } = ctx;
  return {
    onStageStep: (rows, requests) => metrics.observeBatch(rows, requests),
    onStep: (rid, timing) => {
      const route = ctx.cluster.pipeline?.executor.routeOf(rid);
      metrics.observeStep(timing, route, ringHops(route, ctx.selfId));
    },
    onRecovery: (e) => {
      metrics.observeRecovery(e);
      logger.warn(
        `request ${e.requestId}: recovered from the loss of ${ctx.nameOf(e.lostPeer)} in ${e.recoveryMs.toFixed(0)} ms ` +
          `(plan ${e.oldPlan} → ${e.newPlan}, ${e.replayedTokens} tokens replayed)`,
      );
    },
    onRecoveryFailed: () => metrics.observeRecoveryFailure(),
    observeCompute: (measured, expected, kind, byPrevious, newRange, passMs) => ctx.watch.observeCompute(measured, expected, kind, byPrevious, newRange, passMs),
    observeServedStep: (measured, fixed, hops, at) => ctx.watch.observeServedStep(measured, fixed, hops, at),
    servedRingLatency: (ms) => ctx.watch.setServedRingLatency(ms),
    onMigrate: (e) => {
      metrics.observeMove(e);
      logger.info(`request ${e.requestId}: moved to plan ${e.newPlan} at a token boundary (${e.copiedBytes > 0 || e.replayedTokens === 0 ? `${(e.copiedBytes / 1e6).toFixed(2)} MB of KV copied; the last positions in ${(e.switchCopyMs ?? 0).toFixed(0)} ms, switched` : `${e.replayedTokens} tokens replayed`} in ${e.ms.toFixed(0)} ms)`);
    },
  };
}
