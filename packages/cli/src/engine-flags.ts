import { parseKvCacheType, type EngineOptions } from '@edge-node/node';
import { UsageError } from './cli-command.js';

/** `--threads` and `--kv-cache` as parseArgs options, shared by every command that computes. */
export const ENGINE_FLAG_OPTIONS = {
  threads: { type: 'string' },
  'kv-cache': { type: 'string' },
} as const;

export const ENGINE_FLAGS_USAGE = `  --threads N           compute threads (default: the device's cores)
  --kv-cache f16|f32    KV cache storage (default f16, as llama.cpp; f32 is exact and twice the memory)`;

/** The engine options from parsed flags; a bad value is a command-line mistake (exit 2). */
export function engineOptionsFrom(v: { threads?: string | undefined; 'kv-cache'?: string | undefined }): EngineOptions {
  const out: EngineOptions = {};
  if (v.threads !== undefined) {
    const n = Number(v.threads);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`--threads needs a whole number from 1 to 256 (got "${v.threads}")`);
    out.threads = n;
  }
  if (v['kv-cache'] !== undefined) {
    try {
      out.kvCache = parseKvCacheType(v['kv-cache']);
    } catch (err) {
      throw new UsageError(`--kv-cache: ${(err as Error).message}`);
    }
  }
  return out;
}

/** The same options as flags again, for a node process a command starts. */
export function engineFlagsOf(o: EngineOptions): string[] {
  return [...(o.threads !== undefined ? ['--threads', String(o.threads)] : []), ...(o.kvCache ? ['--kv-cache', o.kvCache] : [])];
}
