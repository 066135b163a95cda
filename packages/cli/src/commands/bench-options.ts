import { parseArgs } from 'node:util';
import type { EngineOptions } from '@edge-node/node';
import { UsageError } from '../cli-command.js';
import { ENGINE_FLAG_OPTIONS, engineOptionsFrom } from '../engine-flags.js';
import { intOption, strategyOption, type PlanStrategy } from '../option-parsers.js';
import { parseSplitSpec, type SplitSpec } from './bench-splits.js';


/**
 * The least time a row's measured runs take. A small model's run lasts tens of ms, and this machine's speed moves
 * 1.6× for ~0.1 s at a time: three such runs caught one moment, where the nodes' calibrations (read over their last
 * ~1000 steps) see a longer stretch, so prediction and measurement disagreed by chance.
 */
export const MIN_MEASURE_MS = 2000;

export const BENCH_HELP = `Usage: edge-node bench --model PATH (--nodes N | --api URL) [options]

Measures where the time goes for each way of splitting the model over the nodes: TTFT, prefill and decode speed,
per-token latency (p50/p95) and its parts — compute per stage, transfer per hop, queueing — beside the
partitioner's prediction (from the profiles the nodes measured) and its error.

Options:
  --model PATH            GGUF file or safetensors folder; synthetic:PRESET (e.g. synthetic:smollm2-135m) generates a
                          random-weight F32 model of that shape once into --cache-dir
  --nodes N               start N local nodes on loopback (explicit addresses, no mDNS), stop them after
  --api URL               measure a running cluster at its current split instead (its coordinator's API)
  --api-key KEY           for --api (env EDGE_NODE_API_KEY)
  --splits S              all | auto | layer counts per stage, several separated by ";" (e.g. "30; 15,15; 10,10,10").
                          Default: auto (the partitioner's split for 1..N nodes)
  --strategy S            for auto: optimal (default), memory-weighted or equal
  --prompt-tokens N       prompt length, exactly (random token ids; default 128)
  --gen-tokens N          tokens generated per request, EOS ignored (default 64)
  --concurrency LIST      requests in flight, e.g. 1,2,4 (default 1)
  --runs N                measured runs after one warm-up; figures are medians (default 3). Runs that last under
                          2 s in all are repeated until they have (the one-node row also warms up for 0.5 s)
  --baseline llama.cpp    also run llama.cpp on the same GGUF (needs the npm package node-llama-cpp)
  --llama-threads N       llama.cpp threads (default 1, like one node)
  --no-local              skip the one-node-without-network baseline
  --prefix-cache          let the measured runs take their prompt from the stages' prefix caches (they repeat the
                          warm-up's prompt: TTFT then shows a conversation's next turn); default: every run computes
                          its whole prompt. The prefix cache's hits and bytes are printed either way
  --no-speculation        skip the speculation comparison: by default each split also decodes a quoting prompt (a
                          passage repeated, which prompt lookup drafts from) with speculative decoding off and on at
                          each concurrency, and a second table gives both modes' decode and total tok/s, tokens per
                          walk and the drafts accepted
  --backend kernels|tfjs  what computes in the nodes and the local baseline (default kernels)
  --threads N             compute threads of the nodes and the local baseline (default: the cores)
  --kv-cache f16|f32|q8_0 KV cache storage of the nodes and the local baseline (default f16)
  --json FILE             write every figure as JSON
  --plot FILE.svg         write stacked bars (stage compute + hop transfer per split)
  --markdown              print the table as Markdown
  --cache-dir DIR         where synthetic models go (default ~/.cache/edge-node/synthetic)
  --synthetic-tokenizer DIR  Hugging Face tokenizer folder to embed in a synthetic model
  --log-dir DIR           keep the nodes' logs here
`;

/** `edge-node bench`'s flags, checked: what the measurement, the baselines and the report read. */
export interface BenchOptions {
  model: string | undefined;
  /** Local nodes to start, 0 with --api. */
  nodes: number;
  /** The coordinator's API as given. */
  api: string | undefined;
  apiKey: string | undefined;
  spec: SplitSpec;
  strategy: PlanStrategy;
  promptTokens: number;
  genTokens: number;
  runs: number;
  /** Requests in flight, ascending, without repeats. */
  concurrency: number[];
  baselines: string[];
  llamaThreads: number;
  local: boolean;
  prefixCache: boolean;
  /** Compare each split's decode with speculation off and on (a quoting prompt) at each concurrency. */
  speculation: boolean;
  engine: EngineOptions;
  json: string | undefined;
  plot: string | undefined;
  markdown: boolean;
  cacheDir: string | undefined;
  syntheticTokenizer: string | undefined;
  logDir: string | undefined;
}

function positive(v: string | undefined, flag: string, def: number): number {
  const n = intOption(v, flag, def);
  if (n < 1) throw new UsageError(`${flag} needs a whole number ≥ 1 (got "${v}")`);
  return n;
}

function parseBenchFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowNegative: true,
      options: {
        model: { type: 'string' },
        nodes: { type: 'string' },
        api: { type: 'string' },
        'api-key': { type: 'string' },
        splits: { type: 'string' },
        strategy: { type: 'string' },
        'prompt-tokens': { type: 'string' },
        'gen-tokens': { type: 'string' },
        concurrency: { type: 'string' },
        runs: { type: 'string' },
        baseline: { type: 'string', multiple: true },
        'llama-threads': { type: 'string' },
        local: { type: 'boolean' },
        'prefix-cache': { type: 'boolean' },
        speculation: { type: 'boolean' },
        ...ENGINE_FLAG_OPTIONS,
        json: { type: 'string' },
        plot: { type: 'string' },
        markdown: { type: 'boolean' },
        'cache-dir': { type: 'string' },
        'synthetic-tokenizer': { type: 'string' },
        'log-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${BENCH_HELP}`);
  }
}

/** The checked options, or 'help' for --help; a bad flag is a UsageError naming it. */
export function parseBenchOptions(argv: string[]): BenchOptions | 'help' {
  const v = parseBenchFlags(argv);
  if (v.help) return 'help';
  if ((v.nodes === undefined) === (v.api === undefined)) throw new UsageError(`give exactly one of --nodes N or --api URL\n\n${BENCH_HELP}`);
  if (v.nodes !== undefined && v.model === undefined) throw new UsageError('--nodes needs --model PATH (the model the nodes load)');
  const nodes = v.nodes === undefined ? 0 : positive(v.nodes, '--nodes', 1);
  if (nodes > 9) throw new UsageError('--nodes goes up to 9 on one machine');
  const promptTokens = positive(v['prompt-tokens'], '--prompt-tokens', 128);
  const genTokens = positive(v['gen-tokens'], '--gen-tokens', 64);
  if (genTokens < 2) throw new UsageError('--gen-tokens must be at least 2 (decode needs a step after the first token)');
  const runs = positive(v.runs, '--runs', 3);
  const concurrency = [...new Set((v.concurrency ?? '1').split(',').map((x) => positive(x.trim(), '--concurrency', 1)))].sort((a, b) => a - b);
  const strategy = strategyOption(v.strategy);
  const baselines = v.baseline ?? [];
  for (const b of baselines) if (b !== 'llama.cpp') throw new UsageError(`--baseline knows llama.cpp only, got "${b}"`);
  const llamaThreads = positive(v['llama-threads'], '--llama-threads', 1);
  const engine = engineOptionsFrom(v);
  const spec: SplitSpec = v.splits === undefined ? { kind: 'auto' } : parseSplitSpec(v.splits);
  if (v.api !== undefined && v.splits !== undefined) {
    throw new UsageError('--api measures the split the cluster runs now; to compare splits use --nodes N (or restart the coordinator with --split)');
  }
  return {
    model: v.model,
    nodes,
    api: v.api,
    apiKey: v['api-key'],
    spec,
    strategy,
    promptTokens,
    genTokens,
    runs,
    concurrency,
    baselines,
    llamaThreads,
    local: v.local !== false,
    prefixCache: v['prefix-cache'] === true,
    speculation: v.speculation !== false,
    engine,
    json: v.json,
    plot: v.plot,
    markdown: v.markdown === true,
    cacheDir: v['cache-dir'],
    syntheticTokenizer: v['synthetic-tokenizer'],
    logDir: v['log-dir'],
  };
}
