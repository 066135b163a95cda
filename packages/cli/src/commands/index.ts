import type { CliCommand } from '../cli-command.js';

/**
 * Every `edge-node` command: its name and summary here, its code loaded only when it runs, so that `--help` and
 * `--version` answer without loading the runtime (libp2p, the kernels: ~2 s). Add one entry per command.
 */
export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<CliCommand>;
}

export const commands: CommandEntry[] = [
  { name: 'start', summary: 'start a node and join the cluster', load: async () => (await import('./start.js')).startCommand },
  { name: 'status', summary: 'show peers, device profiles, links and the plan of a running node', load: async () => (await import('./status.js')).statusCommand },
  { name: 'keygen', summary: 'create a cluster key for a private cluster', load: async () => (await import('./keygen.js')).keygenCommand },
  { name: 'plan', summary: 'plan which devices run which layers, and predict latency and throughput', load: async () => (await import('./plan.js')).planCommand },
  { name: 'run', summary: 'generate text on this device', load: async () => (await import('./run.js')).runCommand },
  { name: 'finetune', summary: 'train a LoRA adapter for a model on this device (JSONL text or chats)', load: async () => (await import('./finetune.js')).finetuneCommand },
  { name: 'download', summary: 'download a model from the Hugging Face Hub into the cache', load: async () => (await import('./download.js')).downloadCommand },
  { name: 'chat', summary: 'chat with the cluster in the terminal (streaming)', load: async () => (await import('./chat.js')).chatCommand },
  { name: 'bench', summary: 'measure latency per split (compute, transfer, queueing) beside the partitioner\'s prediction', load: async () => (await import('./bench.js')).benchCommand },
];
