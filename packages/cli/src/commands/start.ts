import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
// Only types and defaults at load: `start --help` answers without the runtime, which buildStartOptions imports.
import type { EdgeNodeOptions, LogLevel } from '@edge-node/node';
import { DEFAULT_API_PORT, DEFAULT_QUEUE_LENGTH } from '@edge-node/node/settings';
import { intOption, numberOption, onOff } from '../option-parsers.js';
import { createDownloadProgressBar } from '../progress-bar.js';
import { LORA_FLAG_OPTIONS, loraOptionFrom } from '../lora-flags.js';
import { ENGINE_FLAG_OPTIONS, engineOptionsFrom } from '../engine-flags.js';
import { UsageError, type CliCommand } from '../cli-command.js';

const HELP = `Usage: edge-node start [--model PATH|REPO] [options]
       edge-node start --model-from-peers [options]

Starts a node. Nodes find each other (mDNS on the local network, or --bootstrap) and run one model together.

Options:
  --model PATH|REPO        model file or directory (GGUF or safetensors), or a Hugging Face repo id
                           owner/name[@revision][/file.gguf], downloaded once into <data dir>/hub.
                           Without it: the Hub's default chat model (HuggingFaceTB/SmolLM2-135M-Instruct)
                           when cached or the Hub answers within 2 s (env EDGE_NODE_HUB_PROBE_MS), else the
                           demo model shipped with edge-node (stories260K)
                           (env HF_TOKEN for gated models, HF_HUB_OFFLINE=1 to use only the cache)
  --hub-endpoint URL       Hugging Face Hub URL (env HF_ENDPOINT; default https://huggingface.co)
  --model-from-peers       no local model: wait for a peer that has one and fetch only this node's layers
  --no-model               no model at all: the node relays and takes part in the cluster, its API answers 503
                           from it (kept in <data dir>/weights for the next start)
  --listen MULTIADDR       address to listen on, repeatable (default /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/tcp/0/ws:
                           all interfaces, any port; the WebSocket one is for browser nodes, GET /join)
  --bootstrap MULTIADDR    a node to connect to, repeatable, e.g. /ip4/192.168.1.20/tcp/4001/p2p/12D3Koo…
  --mdns / --no-mdns       find nodes on the local network by multicast DNS (default: on unless --bootstrap is given
                           or every --listen address is loopback, as for several nodes on one machine)
  --api-port N             HTTP API port (default ${DEFAULT_API_PORT}; 0 = any free port)
  --api-host HOST          HTTP API bind address (default 127.0.0.1; 0.0.0.0 to expose it on the network)
  --api-key KEY            require "Authorization: Bearer KEY" on the API (env EDGE_NODE_API_KEY); / and /health stay open
  --queue-length N         requests that may wait for the pipeline before new ones get HTTP 429 (default ${DEFAULT_QUEUE_LENGTH})
  --name NAME              node name shown to the cluster (default: hostname)
  --data-dir DIR           identity and cache (default ~/.cache/edge-node/<name or "default">); one per node
  --memory-budget BYTES    memory this node offers (default 0.7 × free memory); suffixes K, M, G allowed
  --busy-threshold X       the device counts as busy (and the plan may move its layers) from X times slower
                           than its quiet speed (default 1.5; raise it on a machine others share)
  --split N,N,...          layers per stage for the nodes in name order (e.g. 2,3), instead of the planner's
  --context N              context limit per request in tokens (default: the model's, at most 4096)
  --prefix-cache BYTES     KV blocks kept across requests, so a conversation's next turn (or a shared system
                           prompt) computes only its new tokens (default 256M; 0 disables); suffixes K, M, G
  --speculate on|off       speculative decoding (default on): drafts from the conversation itself (prompt lookup)
                           verified several tokens per pass through the ring; the same text, fewer walks; it backs
                           off by itself where drafts are rejected. A request's "speculate" field overrides it
  --live-moves on|off      requests in flight move to a new plan with their KV caches, copied while they decode
                           (default on); off: they replay their history on the new route
  --draft-model PATH|REPO  a small model with the same tokenizer (checked), whole on this node: it drafts for the
                           requests this node coordinates, instead of prompt lookup. A file, a folder or a Hugging
                           Face repo id (owner/name[@rev][/file.gguf]) fetched into the cache as --model's is
  --lora ADAPTER.gguf      apply a LoRA adapter (llama.cpp's GGUF format, checked against the model) to the requests
                           this node coordinates: every stage applies its layers' slice, sent by this node and
                           checked by SHA-256; a stage that cannot load its slice refuses (GET /v1/cluster: "lora")
  --lora-scale S           the adapter's scale (default 1): each pair adds S·alpha/rank·B·A, as llama.cpp
  --parallel N             requests run at once (slots): batched together, KV memory reserved for each; more wait
                           in the queue (default: as many full-context KV caches as fit the budget, 1-16;
                           --concurrency is the old name)
  --cluster-key FILE       private cluster: only nodes with the same key file connect (env EDGE_NODE_CLUSTER_KEY)
  --backend kernels|tfjs   what computes (default kernels: our WebAssembly kernels on the file's quantised weights;
                           tfjs: @tensorflow/tfjs-node when installed, else tfjs's wasm; F32/F16/BF16 files only)
  --threads N              compute threads (default: the device's cores)
  --log-level LEVEL        debug, info (default), warn or error (env EDGE_NODE_LOG_LEVEL); debug adds how busy
                           the device is as it moves, dial retries, and other detail
  --kv-cache f16|f32|q8_0  KV cache storage (default f16, as llama.cpp; f32 is exact, twice the memory; q8_0:
                           ggml 8-bit blocks, 0.53× f16, for heads of a multiple of 32)
`;


/** Parses "8G", "512M", "1073741824" into bytes. */
export function parseByteSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(value.trim());
  if (!m) throw new UsageError(`${flag} needs a byte count like 4G, 512M or 1073741824 (got "${value}")`);
  const unit = (m[2] ?? '').toLowerCase()[0] ?? '';
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

function parseSplit(value: string): number[] {
  const parts = value.split(',').map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new UsageError(`--split needs layer counts per stage like 10,20 (got "${value}")`);
  }
  return parts;
}

/** The node's options, plus whether it was asked to run without any model (`--no-model`). */
export type StartOptions = EdgeNodeOptions & { relayOnly?: boolean };

/** The flags as parseArgs reads them; a flag it does not know is a usage error with the help. */
function parseStartFlags(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowNegative: true,
      options: {
        model: { type: 'string' },
        'hub-endpoint': { type: 'string' },
        'model-from-peers': { type: 'boolean' },
        // Declared so that --no-model is known; parseArgs (allowNegative) then reports it as model = false.
        'no-model': { type: 'boolean' },
        listen: { type: 'string', multiple: true },
        bootstrap: { type: 'string', multiple: true },
        mdns: { type: 'boolean' },
        'api-port': { type: 'string' },
        'api-host': { type: 'string' },
        'api-key': { type: 'string' },
        'queue-length': { type: 'string' },
        name: { type: 'string' },
        'data-dir': { type: 'string' },
        'memory-budget': { type: 'string' },
        'prefix-cache': { type: 'string' },
        speculate: { type: 'string' },
        'live-moves': { type: 'string' },
        'draft-model': { type: 'string' },
        ...LORA_FLAG_OPTIONS,
        'busy-threshold': { type: 'string' },
        split: { type: 'string' },
        context: { type: 'string' },
        concurrency: { type: 'string' },
        parallel: { type: 'string' },
        'cluster-key': { type: 'string' },
        'log-level': { type: 'string' },
        ...ENGINE_FLAG_OPTIONS,
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${HELP}`);
  }
  return parsed.values;
}

export async function buildStartOptions(argv: string[], env: NodeJS.ProcessEnv): Promise<StartOptions> {
  // Flags first: an unknown one is a usage error at once, before the runtime (~1 s) is loaded.
  const v = parseStartFlags(argv);
  const { DEMO_MODEL_PATH, createConsoleLogger, LOG_LEVELS, hubOptionsFromEnv, parseHubModelRef } = await import('@edge-node/node');
  // parseArgs reads --no-model as model = false (allowNegative).
  const noModel = (v.model as unknown) === false || v['no-model'] === true;
  if (noModel && v['model-from-peers'] === true) throw new UsageError('--no-model starts a relay without a model: leave out --model-from-peers');
  if (typeof v.model === 'string' && v['model-from-peers'] === true) throw new UsageError('give either --model or --model-from-peers, not both');
  if (noModel) delete (v as { model?: unknown }).model;
  // Said before the device is measured (seconds), not after.
  if (typeof v.model === 'string' && !existsSync(v.model) && parseHubModelRef(v.model) === null) {
    throw new UsageError(`--model ${v.model}: ${resolve(v.model)} does not exist (and is not a Hugging Face repo id like owner/name); the demo model is ${DEMO_MODEL_PATH}`);
  }
  const name = v.name ?? (await import('node:os')).hostname();
  const bootstrap = v.bootstrap ?? [];
  const listen = v.listen ?? ['/ip4/0.0.0.0/tcp/0', '/ip4/0.0.0.0/tcp/0/ws'];
  const apiPort = v['api-port'] === undefined ? DEFAULT_API_PORT : Number(v['api-port']);
  if (!Number.isInteger(apiPort) || apiPort < 0 || apiPort > 65535) throw new UsageError(`--api-port needs a port number 0-65535 (got "${v['api-port']}")`);
  const engine = engineOptionsFrom(v);
  const parallel = parallelFrom(v);
  const apiKey = v['api-key'] ?? (env.EDGE_NODE_API_KEY || undefined);
  if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--api-key needs a non-empty key');
  const queueLength = v['queue-length'] === undefined ? undefined : intOption(v['queue-length'], '--queue-length', DEFAULT_QUEUE_LENGTH);
  if (queueLength !== undefined && queueLength < 0) throw new UsageError(`--queue-length needs a whole number ≥ 0 (got "${v['queue-length']}")`);
  const clusterKey = await clusterKeyFrom(v['cluster-key'], env);
  const level = v['log-level'] ?? (env.EDGE_NODE_LOG_LEVEL || 'info');
  if (!LOG_LEVELS.includes(level as LogLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got "${level}")`);
  return {
    name,
    logger: createConsoleLogger({ prefix: name, level: level as LogLevel }),
    dataDir: resolve(v['data-dir'] ?? join(homedir(), '.cache', 'edge-node', v.name ?? 'default')),
    listen,
    bootstrap,
    // A node reachable on loopback only has nothing to announce to the network.
    mdns: v.mdns ?? (bootstrap.length === 0 && !listen.every((a) => /^\/ip4\/127\.|^\/ip6\/::1\//.test(a))),
    apiPort,
    ...(v['api-host'] ? { apiHost: v['api-host'] } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(queueLength !== undefined ? { queueLength } : {}),
    ...(v['memory-budget'] !== undefined ? { memoryBudgetBytes: parseByteSize(v['memory-budget'], '--memory-budget') } : {}),
    ...(v['prefix-cache'] !== undefined ? { prefixCacheBytes: parseByteSize(v['prefix-cache'], '--prefix-cache') } : {}),
    ...(v.speculate !== undefined ? { speculate: onOff(v.speculate, '--speculate') } : {}),
    ...(v['live-moves'] !== undefined ? { liveMoves: onOff(v['live-moves'], '--live-moves') } : {}),
    ...(v['draft-model'] !== undefined ? { draftModelPath: draftModelPath(v['draft-model'], parseHubModelRef) } : {}),
    ...loraFrom(v, noModel),
    ...(v['busy-threshold'] !== undefined ? { deviceWatch: { slowdown: { quietBelow: busyThreshold(v['busy-threshold']) } } } : {}),
    ...(v.split !== undefined ? { split: parseSplit(v.split) } : {}),
    ...(v.context !== undefined ? { contextLength: intOption(v.context, '--context', 0) } : {}),
    ...(parallel !== undefined ? { concurrency: parallel } : {}),
    ...(v.model !== undefined ? { modelPath: existsSync(v.model) ? resolve(v.model) : v.model } : {}),
    ...(v.model === undefined && v['model-from-peers'] === true ? { modelFromPeers: true } : {}),
    ...(noModel ? { relayOnly: true } : {}),
    hub: {
      ...hubOptionsFromEnv(env),
      ...(v['hub-endpoint'] !== undefined ? { endpoint: v['hub-endpoint'] } : {}),
      onProgress: createDownloadProgressBar(),
    },
    ...(clusterKey ? { clusterKey } : {}),
    engine,
  };
}

/** --lora and --lora-scale: the adapter this node's requests are served with (not on a relay without a model). */
function loraFrom(v: { lora?: string | undefined; 'lora-scale'?: string | undefined }, noModel: boolean): { lora?: { path: string; scale: number } } {
  const lora = loraOptionFrom(v);
  if (lora && noModel) throw new UsageError('--lora needs a model: a node started with --no-model serves none');
  return lora ? { lora } : {};
}

/** --parallel (or its old name --concurrency): requests run at once, 1-256. */
function parallelFrom(v: { parallel?: string | undefined; concurrency?: string | undefined }): number | undefined {
  if (v.parallel !== undefined && v.concurrency !== undefined) throw new UsageError('give --parallel or its old name --concurrency, not both');
  const parallelFlag = v.parallel ?? v.concurrency;
  const parallel = parallelFlag === undefined ? undefined : intOption(parallelFlag, v.parallel !== undefined ? '--parallel' : '--concurrency', 1);
  if (parallel !== undefined && (parallel < 1 || parallel > 256)) throw new UsageError(`--parallel needs a whole number from 1 to 256 (got "${parallelFlag}")`);
  return parallel;
}

/** A private cluster's key: --cluster-key FILE, else env EDGE_NODE_CLUSTER_KEY (a key file's path or its text). */
async function clusterKeyFrom(file: string | undefined, env: NodeJS.ProcessEnv): Promise<Uint8Array | undefined> {
  const { parseClusterKey, readClusterKeyFile } = await import('@edge-node/node');
  if (file !== undefined) return readClusterKeyFile(file);
  const value = env.EDGE_NODE_CLUSTER_KEY;
  if (!value) return undefined;
  // The variable holds either a key file path or the key text itself.
  return value.startsWith('/key/swarm/') ? parseClusterKey(new TextEncoder().encode(value), 'EDGE_NODE_CLUSTER_KEY') : readClusterKeyFile(value);
}

export const startCommand: CliCommand = {
  name: 'start',
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    const options = await buildStartOptions(argv, process.env);
    const out = process.stdout;
    if (!options.modelPath && !options.modelFromPeers && !options.relayOnly) {
      const { chooseDefaultModel } = await import('../default-model.js');
      const probe = Number(process.env.EDGE_NODE_HUB_PROBE_MS);
      options.modelPath = await chooseDefaultModel({
        dataDir: options.dataDir,
        hub: options.hub ?? {},
        ...(Number.isFinite(probe) && probe > 0 ? { probeMs: probe } : {}),
        say: (line) => out.write(`edge-node: ${line}\n`),
      });
    }
    const { startEdgeNode } = await import('@edge-node/node');
    // The page a browser tab joins from (GET /join) is the browser package's: the CLI, which ships both, says where.
    const { BROWSER_NODE_ASSETS } = await import('@edge-node/browser/assets');
    const node = await startEdgeNode({ ...options, joinAssets: BROWSER_NODE_ASSETS });
    out.write(`edge-node: peer id ${node.host.peerId}\n`);
    for (const a of node.host.addresses()) out.write(`edge-node: listening on ${a}\n`);
    out.write(`edge-node: API at ${node.api.url}\n`);
    if (node.host.addresses().some((a) => /\/wss?\//.test(a))) out.write(`edge-node: a browser joins the cluster at ${new URL('/join', node.api.url).toString()}\n`);
    out.write(`edge-node: data dir ${options.dataDir}${options.clusterKey ? ', private cluster (cluster key set)' : ''}${options.mdns ? ', mDNS on' : ''}\n`);

    const signal = await new Promise<NodeJS.Signals | Error>((resolveSignal) => {
      const onSignal = (s: NodeJS.Signals) => resolveSignal(s);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      void node.fatal.then(resolveSignal);
    });
    const fatal = signal instanceof Error ? signal : null;
    node.logger.info(fatal ? `stopping: ${fatal.message}` : `stopping (${signal})`);
    // A second signal or a stuck shutdown must not keep the process alive.
    const force = setTimeout(() => process.exit(fatal ? 1 : 130), 5000);
    force.unref();
    await node.stop();
    clearTimeout(force);
    if (fatal) throw fatal;
    return 0;
  },
};

/** A draft model's file or folder, else a Hugging Face repo id (the node fetches it into its cache as --model's). */
function draftModelPath(value: string, parseHubModelRef: (text: string) => object | null): string {
  if (existsSync(value)) return resolve(value);
  if (parseHubModelRef(value) === null) throw new UsageError(`--draft-model ${value}: ${resolve(value)} does not exist, and it is not a Hugging Face repo id like owner/name (give a GGUF file, a Hugging Face folder or a repo id of a model with the served model's tokenizer)`);
  return value;
}

function busyThreshold(value: string): number {
  const x = numberOption(value, '--busy-threshold', 1.5);
  if (!(x > 1)) throw new UsageError(`--busy-threshold must be a number above 1 (times slower than quiet), got ${JSON.stringify(value)}`);
  return x;
}
