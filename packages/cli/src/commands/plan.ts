import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import {
  InvalidDevicesError,
  InvalidModelConfigError,
  InvalidPlanError,
  evaluateSplit,
  formatBytes,
  modelProfile,
  modelShapeFromHfConfig,
  parseCluster,
  planPipeline,
  simulate,
  type ModelShape,
  type Objective,
  type Plan,
  type Prediction,
} from '@edge-node/partitioner';
import { checkKvCacheType, kvBytesPerValue, type EngineBackend, type KvCacheType } from '@edge-node/node/settings';
import { UsageError, type CliCommand } from '../cli-command.js';
import { strategyOption, type PlanStrategy } from '../option-parsers.js';
import { parseCommandLine } from '../command-line.js';
import { ENGINE_FLAG_OPTIONS, engineOptionsFrom } from '../engine-flags.js';

const HELP = `Usage: edge-node plan (--model PATH | --model-config config.json) --devices devices.json
                       [--objective latency|throughput] [--strategy optimal|memory-weighted|equal]
                       [--split N,N,...] [--prompt-tokens N] [--gen-tokens N] [--context-tokens N]
                       [--concurrency N] [--bytes-per-weight B] [--backend kernels|tfjs]
                       [--kv-cache f16|f32|q8_0] [--json]

Plans which devices run which contiguous layers (ring order, layer counts) and predicts TTFT, per-token latency
and throughput. No weights are read: only the model's config.

Options:
  --model PATH            a GGUF file or a safetensors folder (its config is read)
  --model-config FILE     a Hugging Face config.json (llama / mistral / qwen2)
  --devices FILE          { "devices": [{ "id", "gflops", "memBandwidthGBps", "memoryBytes" }],
                            "links": [{ "from", "to", "latencyMs", "bandwidthMBps" }],
                            "defaultLink": { "latencyMs", "bandwidthMBps" } }
  --objective O           latency (one request: TTFT + per-token time; default) or throughput (tokens/s with
                          --concurrency requests in flight)
  --strategy S            optimal (default: exact up to 8 devices, fast beyond), memory-weighted (exo's split),
                          equal
  --split N,N,...         evaluate this split (layers per device, in the listed device order) instead of planning
  --prompt-tokens N       default 128
  --gen-tokens N          default 128
  --context-tokens N      KV cache to reserve per request (default prompt + gen)
  --concurrency N         requests in flight (default 1)
  --bytes-per-weight B    weight bytes at run time (default: what the model file stores, since weights stay
                          in its encoding; 4 with --model-config or --backend tfjs. 2 = f16, 1.0625 = Q8_0,
                          ≈0.6 = Q4_K_M)
  --backend kernels|tfjs  what the nodes compute with (default kernels); tfjs holds weights as F32 and takes
                          only F32/F16/BF16 files
  --kv-cache f16|f32|q8_0 the nodes' KV cache storage, for the memory it takes (default f16; tfjs: f32)
  --json                  print one JSON object
`;

function positiveInt(v: string | undefined, flag: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${v}"`);
  return n;
}

async function readJsonFile(path: string, what: string, ErrorType: new (m: string) => Error): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ErrorType(`cannot read ${what} ${path}${code === 'ENOENT' ? ': no such file' : ` (${code ?? (e as Error).message})`}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ErrorType(`${what} ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The model's shape from a model file, via the node package's reader (loaded only when needed). */
async function shapeFromModelFile(path: string, bytesPerWeight: number | undefined, backend: EngineBackend, kvCache: KvCacheType): Promise<ModelShape> {
  const { openModel, modelShapeOf, storedBytesPerWeight, checkTfjsWeightTypes } = await import('@edge-node/node');
  const model = await openModel(path);
  try {
    // tfjs dequantises every weight to F32 at load; the kernels keep the file's encoding.
    if (backend === 'tfjs') checkTfjsWeightTypes(model);
    return modelShapeOf(model.config, bytesPerWeight ?? (backend === 'tfjs' ? 4 : storedBytesPerWeight(model)), kvCache);
  } finally {
    await model.close();
  }
}

/** The cache a request reserves per token of context, over all layers. */
interface KvSummary {
  type: KvCacheType;
  bytesPerToken: number;
}

function formatTable(plan: Plan, predicted: Prediction, modelName: string, method: string, kv: KvSummary): string {
  const r = plan.request;
  const rows = plan.stages.map((s) => [
    s.device,
    `[${s.startLayer}, ${s.endLayer}) (${s.endLayer - s.startLayer})`,
    `${formatBytes(s.memoryBytes)} / ${formatBytes(s.memoryAvailableBytes)}${s.memoryBytes > s.memoryAvailableBytes ? ' OVER' : ''}`,
    s.stageMs.toFixed(2),
  ]);
  const head = ['device', 'layers', 'memory used / available', 'stage ms'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  let out = `Plan for ${modelName}: ${method}, objective ${plan.objective}; prompt ${r.promptTokens}, gen ${r.genTokens}, ` +
    `context ${r.contextTokens}, concurrency ${r.concurrency}; KV cache ${kv.type}, ${formatBytes(kv.bytesPerToken)} per token\n\n`;
  out += `${line(head)}\n${rows.map(line).join('\n')}\n`;
  if (plan.excluded.length > 0) {
    out += `\nLeft out:\n${plan.excluded.map((e) => `  ${e.device}: ${e.reason}`).join('\n')}\n`;
  }
  if (!plan.fitsInMemory) out += `\nWARNING: a stage needs more memory than its device has (marked OVER); this split cannot run.\n`;
  out += `\nPredicted (simulated, ${r.concurrency} request(s) in flight): TTFT ${predicted.ttftMs.toFixed(1)} ms, ` +
    `per token ${predicted.tokenLatencyMs.toFixed(2)} ms, throughput ${predicted.throughputTokPerS.toFixed(2)} tok/s\n`;
  out += `Cost model (steady state): per token ${plan.cost.tokenLatencyMs.toFixed(2)} ms, ` +
    `${plan.cost.throughputTokPerS.toFixed(2)} tok/s at concurrency ${r.concurrency}\n`;
  return out;
}

/** What `edge-node plan` was asked: the model, the devices, the request to plan for, and how. */
interface PlanRequest {
  model: { path: string } | { config: string };
  devices: string;
  objective: Objective;
  strategy: PlanStrategy;
  split: number[] | undefined;
  request: { promptTokens: number; genTokens: number; contextTokens: number; concurrency: number };
  bytesPerWeight: number | undefined;
  backend: EngineBackend;
  kvCache: KvCacheType;
  json: boolean;
}

function parsePlanSplit(value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const split = value.split(',').map((x) => Number(x.trim()));
  if (split.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError(`--split must be comma-separated non-negative integers, got "${value}"`);
  return split;
}

function parseRequestShape(v: { 'prompt-tokens'?: string | undefined; 'gen-tokens'?: string | undefined; 'context-tokens'?: string | undefined; concurrency?: string | undefined }): PlanRequest['request'] {
  const promptTokens = positiveInt(v['prompt-tokens'], '--prompt-tokens', 128);
  const genTokens = positiveInt(v['gen-tokens'], '--gen-tokens', 128);
  const contextTokens = positiveInt(v['context-tokens'], '--context-tokens', promptTokens + genTokens);
  if (contextTokens < promptTokens + genTokens) throw new UsageError(`--context-tokens (${contextTokens}) must be at least prompt + gen tokens (${promptTokens + genTokens})`);
  return { promptTokens, genTokens, contextTokens, concurrency: positiveInt(v.concurrency, '--concurrency', 1) };
}

/** The flags, checked in the order a user reads them; null for --help (printed). */
function parsePlanFlags(argv: string[]): PlanRequest | null {
  const parsed = parseCommandLine(
    {
      args: argv,
      options: {
        model: { type: 'string' },
        'model-config': { type: 'string' },
        devices: { type: 'string' },
        objective: { type: 'string' },
        strategy: { type: 'string' },
        split: { type: 'string' },
        'prompt-tokens': { type: 'string' },
        'gen-tokens': { type: 'string' },
        'context-tokens': { type: 'string' },
        concurrency: { type: 'string' },
        'bytes-per-weight': { type: 'string' },
        backend: ENGINE_FLAG_OPTIONS.backend,
        'kv-cache': ENGINE_FLAG_OPTIONS['kv-cache'],
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    HELP,
  );
  if (!parsed) return null;
  const v = parsed.values;
  if ((v.model === undefined) === (v['model-config'] === undefined)) throw new UsageError(`give exactly one of --model or --model-config\n\n${HELP}`);
  if (v.devices === undefined) throw new UsageError(`--devices is required\n\n${HELP}`);
  const objective = (v.objective ?? 'latency') as Objective;
  if (objective !== 'latency' && objective !== 'throughput') throw new UsageError(`--objective must be latency or throughput, got "${v.objective}"`);
  const strategy = strategyOption(v.strategy);
  if (v.split !== undefined && v.strategy !== undefined) throw new UsageError('--split evaluates a given split: do not combine it with --strategy');
  const request = parseRequestShape(v);
  const bytesPerWeight = v['bytes-per-weight'] === undefined ? undefined : Number(v['bytes-per-weight']);
  if (bytesPerWeight !== undefined && !(bytesPerWeight > 0)) throw new UsageError(`--bytes-per-weight must be a positive number, got "${v['bytes-per-weight']}"`);
  const engine = engineOptionsFrom({ backend: v.backend, 'kv-cache': v['kv-cache'] });
  const backend = engine.backend ?? 'kernels';
  return {
    model: v.model !== undefined ? { path: v.model } : { config: v['model-config']! },
    devices: v.devices,
    objective,
    strategy,
    split: parsePlanSplit(v.split),
    request,
    bytesPerWeight,
    backend,
    // The cache the nodes will keep: what the engine defaults to unless told (kernels f16, tfjs f32).
    kvCache: engine.kvCache ?? (backend === 'tfjs' ? 'f32' : 'f16'),
    json: v.json ?? false,
  };
}

/** The model's shape from its file or its config.json, with the KV cache the nodes will keep. */
async function shapeOf(r: PlanRequest): Promise<ModelShape> {
  const shape = 'path' in r.model
    ? await shapeFromModelFile(r.model.path, r.bytesPerWeight, r.backend, r.kvCache)
    : { ...modelShapeFromHfConfig(await readJsonFile(r.model.config, 'model config', InvalidModelConfigError), { bytesPerWeight: r.bytesPerWeight ?? 4 }), bytesPerKvValue: kvBytesPerValue(r.kvCache) };
  // A node refuses a cache its heads cannot hold (Q8_0 blocks of 32): so does its plan.
  checkKvCacheType(r.kvCache, shape.headDim);
  return shape;
}

/** The given split evaluated, or the planner's; a split that cannot be is a usage mistake. */
function planOrEvaluate(r: PlanRequest, profile: ReturnType<typeof modelProfile>, cluster: ReturnType<typeof parseCluster>): Plan {
  if (!r.split) return planPipeline(profile, cluster, r.request, { objective: r.objective, strategy: r.strategy });
  try {
    return evaluateSplit(profile, cluster, r.request, r.split, r.objective);
  } catch (e) {
    if (e instanceof InvalidPlanError) throw new UsageError(`--split: ${e.message}`);
    throw e;
  }
}

/** The --json object. */
function planJson(r: PlanRequest, plan: Plan, predicted: Prediction, modelName: string | undefined, kv: KvSummary): object {
  return {
    strategy: r.split ? 'given' : r.strategy,
    method: plan.strategy,
    objective: r.objective,
    model: modelName ?? null,
    request: plan.request,
    kvCache: kv.type,
    kvBytesPerToken: kv.bytesPerToken,
    fitsInMemory: plan.fitsInMemory,
    stages: plan.stages.map((s) => ({
      device: s.device,
      startLayer: s.startLayer,
      endLayer: s.endLayer,
      memoryBytes: s.memoryBytes,
      memoryAvailableBytes: s.memoryAvailableBytes,
      computeMs: s.computeMs,
      hopMs: s.hopMs,
      stageMs: s.stageMs,
    })),
    excluded: plan.excluded.map((e) => ({ device: e.device, reason: e.reason, code: e.code })),
    predicted: { ttftMs: predicted.ttftMs, tokenLatencyMs: predicted.tokenLatencyMs, throughputTokPerS: predicted.throughputTokPerS },
    costModel: plan.cost,
  };
}

export const planCommand: CliCommand = {
  name: 'plan',
  async run(argv) {
    const r = parsePlanFlags(argv);
    if (!r) return 0;
    const shape = await shapeOf(r);
    const profile = modelProfile(shape);
    const kv: KvSummary = { type: r.kvCache, bytesPerToken: profile.layers.reduce((sum, l) => sum + l.kvBytesPerToken, 0) };
    const cluster = parseCluster(await readJsonFile(r.devices, 'devices file', InvalidDevicesError));
    const plan = planOrEvaluate(r, profile, cluster);
    const predicted = simulate(plan, { model: profile, cluster }, r.request);
    if (r.json) {
      process.stdout.write(`${JSON.stringify(planJson(r, plan, predicted, shape.name, kv), null, 2)}\n`);
    } else {
      const method = r.split ? 'given split' : r.strategy === 'optimal' ? `optimal (${plan.strategy})` : r.strategy;
      const name = shape.name ?? ('path' in r.model ? r.model.path : basename(dirname(resolve(r.model.config))));
      process.stdout.write(formatTable(plan, predicted, name, method, kv));
    }
    return 0;
  },
};
