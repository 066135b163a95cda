import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredDType } from '../model/model-file.js';
import { openModel } from '../model/open-model.js';

/** What model listings (Ollama's /api/tags, /api/show, /api/ps) say about the served model's files. */
export interface ModelFacts {
  format: 'gguf' | 'safetensors' | 'unknown';
  /** Bytes of the model's files (0 when this node has no file: it took its layers from peers). */
  sizeBytes: number;
  /** SHA-256 of the file's bytes (a folder: of its weight files in name order), or "" without a file. */
  digest: string;
  modifiedAt: Date;
  /** Exact, summed over the file's tensors. */
  parameterCount: number;
  /** The storage type most of the weights have (F32, F16, Q8_0, Q4_K, …). */
  quantization: string;
}

/** 260K, 135M, 1.2B: how Ollama writes a parameter count. */
export function parameterSize(n: number): string {
  const units: [number, string][] = [[1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [scale, unit] of units) {
    if (n >= scale) {
      const v = n / scale;
      return `${v >= 100 ? v.toFixed(0) : Number(v.toFixed(1))}${unit}`;
    }
  }
  return String(n);
}

async function sha256OfFiles(paths: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const p of paths) {
    for await (const chunk of createReadStream(p)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * Reads the facts once, on first use: the header for the tensors, then one pass over the bytes for the digest
 * (a few seconds for a multi-GB file, paid by the first listing only).
 */
export function modelFacts(modelPath: string | undefined): () => Promise<ModelFacts> {
  let facts: Promise<ModelFacts> | null = null;
  return () => {
    facts ??= (async (): Promise<ModelFacts> => {
      if (!modelPath) return { format: 'unknown', sizeBytes: 0, digest: '', modifiedAt: new Date(), parameterCount: 0, quantization: 'unknown' };
      const model = await openModel(modelPath);
      let parameterCount = 0;
      const byType = new Map<StoredDType, number>();
      try {
        for (const t of model.tensors.values()) {
          const n = t.shape.reduce((a, b) => a * b, 1);
          parameterCount += n;
          if (t.shape.length >= 2) byType.set(t.dtype, (byType.get(t.dtype) ?? 0) + n);
        }
      } finally {
        await model.close();
      }
      const quantization = [...byType.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'unknown';
      const st = await stat(modelPath);
      const files = st.isDirectory()
        ? (await readdir(modelPath)).filter((f) => f.endsWith('.safetensors')).sort().map((f) => join(modelPath, f))
        : [modelPath];
      const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
      return {
        format: model.format,
        sizeBytes: sizes.reduce((a, b) => a + b, 0),
        digest: await sha256OfFiles(files),
        modifiedAt: st.mtime,
        parameterCount,
        quantization: String(quantization).toUpperCase(),
      };
    })();
    return facts;
  };
}
