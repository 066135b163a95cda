import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './cli-command.js';
import { numberOption } from './option-parsers.js';

/** `--lora` and `--lora-scale` as parseArgs options, for the commands that serve or run a model. */
export const LORA_FLAG_OPTIONS = {
  lora: { type: 'string' },
  'lora-scale': { type: 'string' },
} as const;

export const LORA_FLAGS_USAGE = `  --lora ADAPTER.gguf   apply a LoRA adapter in llama.cpp's GGUF format (checked against the model); in a cluster
                        every stage applies its layers' slice, sent to it by this node
  --lora-scale S        the adapter's scale (default 1): each pair adds S·alpha/rank·B·A, as llama.cpp`;

/** The adapter and scale from parsed flags; a bad value or a missing file is a command-line mistake (exit 2). */
export function loraOptionFrom(v: { lora?: string | undefined; 'lora-scale'?: string | undefined }): { path: string; scale: number } | undefined {
  if (v.lora === undefined) {
    if (v['lora-scale'] !== undefined) throw new UsageError('--lora-scale needs --lora ADAPTER.gguf');
    return undefined;
  }
  if (!existsSync(v.lora)) throw new UsageError(`--lora ${v.lora}: ${resolve(v.lora)} does not exist (give a LoRA adapter in llama.cpp's GGUF format)`);
  return { path: resolve(v.lora), scale: numberOption(v['lora-scale'], '--lora-scale', 1) };
}
