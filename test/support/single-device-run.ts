/**
 * The single-device oracle for pipeline tests: `edge-node run --json` (the built CLI, one compute thread) in a child
 * process, and the float64 reference of stories260K shipped next to the model.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_BIN } from './cluster-harness.js';

const execFileAsync = promisify(execFile);

export const SHARED_MODELS = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
export const STORIES_GGUF = join(SHARED_MODELS, 'stories260k', 'stories260K.gguf');

export interface StoriesReference {
  prompt_text: string;
  prompt_ids_with_bos: number[];
  /** Greedy tokens after BOS alone (the first ones spell the prompt "Once upon a time"). */
  greedy_from_bos_ids: number[];
  greedy_from_bos_text: string;
}

export function storiesReference(): StoriesReference {
  return JSON.parse(readFileSync(join(SHARED_MODELS, 'stories260k', 'reference_outputs.json'), 'utf8')) as StoriesReference;
}

export interface SingleDeviceResult {
  text: string;
  tokens: number[];
  promptTokens: number[];
  finishReason: string;
}

/** Greedy generation on one device with `edge-node run --json`. */
export async function runSingleDevice(model: string, prompt: string, maxTokens: number, extraArgs: string[] = []): Promise<SingleDeviceResult> {
  const { stdout } = await execFileAsync(
    process.execPath,
    [CLI_BIN, 'run', '--model', model, '--prompt', prompt, '--max-tokens', String(maxTokens), '--temperature', '0', '--threads', '1', '--json', ...extraArgs],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as SingleDeviceResult;
}
