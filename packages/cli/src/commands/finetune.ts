import { UsageError, type CliCommand } from '../cli-command.js';
import { parseCommandLine } from '../command-line.js';
import { intOption, numberOption } from '../option-parsers.js';
import { nodeApi } from '../node-api.js';
import { createTrainingProgressLine } from '../progress-bar.js';
import { finetuneThroughNode } from './finetune-remote.js';
import type { FinetuneJobRequest } from '@edge-node/node';

const DEFAULTS = { rank: 8, alpha: 16, lr: 1e-3, steps: 100, batch: 4, seed: 0 };

const HELP = `Usage: edge-node finetune --model PATH --data FILE.jsonl --out ADAPTER.gguf [options]
       edge-node finetune --api URL --data FILE.jsonl --out ADAPTER.gguf [options]

Trains a LoRA adapter for a GGUF model on this device and writes it in llama.cpp's LoRA GGUF format, ready for
\`edge-node run|start --lora ADAPTER.gguf\` (or llama.cpp's --lora). The base weights stay frozen in their encoding.

Data: one JSON object per line, either {"text": "…"} (the loss counts every token) or a chat in OpenAI's
fine-tuning format, {"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}
(rendered with the model's chat template; the loss counts the assistant turns only). A bad line is refused
with its line number before training starts.

Options:
  --model PATH      the base model (GGUF)
  --data FILE       the training data (JSONL)
  --out FILE        where to write the adapter
  --rank R          LoRA rank (default ${DEFAULTS.rank}); on attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down
  --alpha A         LoRA alpha: the update is scaled by alpha/rank (default ${DEFAULTS.alpha})
  --lr LR           AdamW learning rate (default ${DEFAULTS.lr}); gradients clipped to global norm 1
  --steps N         optimiser steps (default ${DEFAULTS.steps})
  --batch B         sequences per step (default ${DEFAULTS.batch})
  --seed S          seeds the adapter's initial A and the data order (default ${DEFAULTS.seed})
  --threads N       kernel threads for the products (default: the device's cores); the rest runs on one
  --api URL         train on the cluster of the running node at URL instead of this device: the node keeps the
                    data (only hidden states and gradients go to the stages that hold the other layers; the
                    model is the node's, --model and --threads are not used); the adapter is written here
  --api-key KEY     that node's API key, if it was started with one (or env EDGE_NODE_API_KEY)
  --recoveries N    with --api: stages lost mid-job that the job goes on without, from its last checkpoint
                    (every 10 steps), before it fails (default 3)
  -h, --help
`;

interface FinetuneFlags {
  data?: string | undefined;
  out?: string | undefined;
  rank?: string | undefined;
  alpha?: string | undefined;
  lr?: string | undefined;
  steps?: string | undefined;
  batch?: string | undefined;
  seed?: string | undefined;
  threads?: string | undefined;
  api?: string | undefined;
  'api-key'?: string | undefined;
  recoveries?: string | undefined;
}

/** The training settings both ways of training take, from the command line or the defaults. */
function hyperparameters(v: FinetuneFlags): Pick<FinetuneJobRequest, 'rank' | 'alpha' | 'lr' | 'steps' | 'batch' | 'seed'> {
  return {
    rank: intOption(v.rank, '--rank', DEFAULTS.rank),
    alpha: numberOption(v.alpha, '--alpha', DEFAULTS.alpha),
    lr: numberOption(v.lr, '--lr', DEFAULTS.lr),
    steps: intOption(v.steps, '--steps', DEFAULTS.steps),
    batch: intOption(v.batch, '--batch', DEFAULTS.batch),
    seed: intOption(v.seed, '--seed', DEFAULTS.seed),
  };
}

/** `--api URL`: the job on that node's cluster (finetune-remote.ts), with the same progress line. */
async function runOnNode(v: FinetuneFlags): Promise<number> {
  if (v.threads !== undefined) throw new UsageError('--threads is for training on this device; with --api each node computes with its own --threads');
  for (const flag of ['data', 'out'] as const) if (!v[flag]) throw new UsageError(`--${flag} is required\n\n${HELP}`);
  const report = await finetuneThroughNode(nodeApi(v.api, v['api-key']), {
    data: v.data!,
    out: v.out!,
    ...hyperparameters(v),
    recoveries: intOption(v.recoveries, '--recoveries', 3),
    onProgress: createTrainingProgressLine(),
    onNotice: (message) => process.stderr.write(`\nedge-node finetune: ${message}\n`),
  });
  const losses = report.losses;
  const stages = report.stages.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`).join(' → ');
  process.stderr.write(
    `edge-node finetune: ${losses.length} steps on ${report.examples} examples through ${stages}, loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}, ` +
      `${report.tokensPerSecond.toFixed(0)} tokens/s, ${report.parameters} adapter parameters; wrote ${v.out}\n`,
  );
  return 0;
}

export const finetuneCommand: CliCommand = {
  name: 'finetune',
  async run(argv) {
    const parsed = parseCommandLine(
      {
        args: argv,
        options: {
          model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' },
          lr: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' }, api: { type: 'string' }, 'api-key': { type: 'string' }, recoveries: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      },
      HELP,
    );
    if (!parsed) return 0;
    const v = parsed.values;
    if (v.api !== undefined) return runOnNode(v);
    if (v.recoveries !== undefined) throw new UsageError('--recoveries is for a job on a cluster (--api URL)');
    for (const flag of ['model', 'data', 'out'] as const) if (!v[flag]) throw new UsageError(`--${flag} is required\n\n${HELP}`);
    // The runtime only once the command line is sound.
    const { runFinetune } = await import('@edge-node/node');
    const report = await runFinetune({
      model: v.model!,
      data: v.data!,
      out: v.out!,
      ...hyperparameters(v),
      ...(v.threads === undefined ? {} : { threads: intOption(v.threads, '--threads', 1) }),
      onProgress: createTrainingProgressLine(),
    });
    const losses = report.losses;
    process.stderr.write(
      `edge-node finetune: ${losses.length} steps on ${report.examples} examples, loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}, ` +
        `${report.tokensPerSecond.toFixed(0)} tokens/s, ${report.parameters} adapter parameters; wrote ${v.out}\n`,
    );
    return 0;
  },
};
