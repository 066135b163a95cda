import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../cli-command.js';

export const SYNTHETIC_PREFIX = 'synthetic:';

/**
 * The test kit, loaded only for a synthetic model: it is a repository package, not part of the published runtime,
 * so the command works without it for real model files.
 */
async function loadTestkit(): Promise<typeof import('@edge-node/testkit')> {
  try {
    return await import('@edge-node/testkit');
  } catch (err) {
    throw new UsageError(`--model synthetic:PRESET needs @edge-node/testkit, which comes with the edge-node repository (npm ci there), not with the published command (${(err as Error).message})`);
  }
}

/**
 * A --model value as a file path: `synthetic:PRESET` (a random-weight F32 GGUF of a real model's shape, generated
 * once into the cache dir) or a path as given.
 */
export async function resolveBenchModel(value: string, opts: { cacheDir?: string; tokenizerDir?: string; log?: (line: string) => void } = {}): Promise<string> {
  if (!value.startsWith(SYNTHETIC_PREFIX)) return resolve(value);
  const preset = value.slice(SYNTHETIC_PREFIX.length);
  const { SYNTHETIC_PRESET_NAMES, generateSyntheticModel, isSyntheticPresetName } = await loadTestkit();
  if (!isSyntheticPresetName(preset)) {
    throw new UsageError(`unknown synthetic model "${preset}"; one of: ${SYNTHETIC_PRESET_NAMES.join(', ')}`);
  }
  const dir = resolve(opts.cacheDir ?? join(homedir(), '.cache', 'edge-node', 'synthetic'));
  const tok = opts.tokenizerDir ? '-tok' : '';
  const path = join(dir, `${preset}-f32-seed0${tok}.gguf`);
  if (existsSync(path)) return path;
  await mkdir(dir, { recursive: true });
  const partial = `${path}.partial-${process.pid}`;
  opts.log?.(`generating ${path} (random weights, ${preset} shape, F32)…`);
  try {
    await generateSyntheticModel({
      preset,
      format: 'gguf',
      dtype: 'F32',
      seed: 0,
      outPath: partial,
      ...(opts.tokenizerDir ? { tokenizerDir: opts.tokenizerDir } : {}),
    });
    await rename(partial, path);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return path;
}
