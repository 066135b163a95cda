import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { SYNTHETIC_PRESETS, generateSyntheticModel, type SyntheticPresetName } from '@edge-node/node';
import { UsageError } from '../cli-command.js';

export const SYNTHETIC_PREFIX = 'synthetic:';

/**
 * A --model value as a file path: `synthetic:PRESET` (a random-weight F32 GGUF of a real model's shape, generated
 * once into the cache dir) or a path as given.
 */
export async function resolveBenchModel(value: string, opts: { cacheDir?: string; tokenizerDir?: string; log?: (line: string) => void } = {}): Promise<string> {
  if (!value.startsWith(SYNTHETIC_PREFIX)) return resolve(value);
  const preset = value.slice(SYNTHETIC_PREFIX.length);
  if (!(preset in SYNTHETIC_PRESETS)) {
    throw new UsageError(`unknown synthetic model "${preset}"; one of: ${Object.keys(SYNTHETIC_PRESETS).join(', ')}`);
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
      preset: preset as SyntheticPresetName,
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
