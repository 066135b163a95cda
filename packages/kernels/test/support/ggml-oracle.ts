// Runs ggml-oracle.py (ctypes on node-llama-cpp's libggml-base): llama.cpp's own quantiser and dequantiser, the
// reference the kernels are checked against.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const GGML_LIB_DIR = process.env.GGML_LIB_DIR ?? join(here, '../../../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');

/** Why the oracle cannot run here, or undefined when it can. */
export function oracleUnavailable(): string | undefined {
  if (!existsSync(join(GGML_LIB_DIR, 'libggml-base.so'))) {
    return `ggml oracle unavailable: no libggml-base.so in ${GGML_LIB_DIR} (run \`npm run setup:llama-cpp\`)`;
  }
  return undefined;
}

export interface GgmlQuantized {
  /** The rows in ggml's encoding of the type. */
  blocks: Uint8Array;
  /** ggml's dequantisation of those blocks (to_float of the type traits). */
  dequantized: Float32Array;
}

/** Quantises rows of `cols` values with ggml_quantize_chunk and dequantises them with ggml's to_float. */
export function ggmlQuantize(typeId: number, cols: number, x: Float32Array): GgmlQuantized {
  const dir = mkdtempSync(join(tmpdir(), 'ggml-oracle-'));
  try {
    const src = join(dir, 'x.f32');
    writeFileSync(src, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    execFileSync('python3', [join(here, 'ggml-oracle.py'), GGML_LIB_DIR, String(typeId), String(cols), src, join(dir, 'q'), join(dir, 'y')], { stdio: 'pipe' });
    const blocks = new Uint8Array(readFileSync(join(dir, 'q')));
    const y = readFileSync(join(dir, 'y'));
    const dequantized = new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength));
    return { blocks, dequantized };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
