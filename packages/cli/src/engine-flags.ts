import { checkEngineOptions, parseEngineBackend, parseKvCacheType, type EngineOptions } from '@edge-node/node/settings';
import { UsageError } from './cli-command.js';

/** `--backend`, `--threads` and `--kv-cache` as parseArgs options, shared by every command that computes. */
export const ENGINE_FLAG_OPTIONS = {
  backend: { type: 'string' },
  threads: { type: 'string' },
  'kv-cache': { type: 'string' },
} as const;

export const ENGINE_FLAGS_USAGE = `  --backend kernels|tfjs  what computes (default kernels: our WebAssembly kernels on quantised weights; tfjs:
                        @tensorflow/tfjs-node when installed, else tfjs's wasm backend; F32/F16/BF16 files only)
  --threads N           compute threads (default: the device's cores)
  --kv-cache f16|f32|q8_0
                        KV cache storage (default f16, as llama.cpp; f32 is exact and twice the memory; q8_0 is
                        ggml's 8-bit blocks, 0.53× f16's memory, for heads of a multiple of 32; tfjs: f32)`;

/** The engine options from parsed flags; a bad value is a command-line mistake (exit 2). */
export function engineOptionsFrom(v: { backend?: string | undefined; threads?: string | undefined; 'kv-cache'?: string | undefined }): EngineOptions {
  const out: EngineOptions = {};
  const parse = <T>(flag: string, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw new UsageError(`${flag}: ${(err as Error).message}`);
    }
  };
  if (v.backend !== undefined) out.backend = parse('--backend', () => parseEngineBackend(v.backend!));
  if (v.threads !== undefined) {
    const n = Number(v.threads);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`--threads needs a whole number from 1 to 256 (got "${v.threads}")`);
    out.threads = n;
  }
  if (v['kv-cache'] !== undefined) out.kvCache = parse('--kv-cache', () => parseKvCacheType(v['kv-cache']!));
  parse('--kv-cache', () => checkEngineOptions(out));
  return out;
}

/** The same options as flags again, for a node process a command starts. */
export function engineFlagsOf(o: EngineOptions): string[] {
  return [
    ...(o.backend ? ['--backend', o.backend] : []),
    ...(o.threads !== undefined ? ['--threads', String(o.threads)] : []),
    ...(o.kvCache ? ['--kv-cache', o.kvCache] : []),
  ];
}
