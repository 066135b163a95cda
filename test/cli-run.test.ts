/**
 * `edge-node run` as a user runs it: the built CLI in a child process (run `npm run build` first).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSyntheticModel } from '@edge-node/testkit';

const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'packages/cli/bin/edge-node.js');
const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const STORIES = join(SHARED, 'stories260k', 'stories260K.gguf');
const reference = JSON.parse(readFileSync(join(SHARED, 'stories260k', 'reference_outputs.json'), 'utf8')) as {
  prompt_ids_with_bos: number[];
  greedy_from_bos_ids: number[];
  greedy_from_bos_text: string;
};

interface RunJson {
  text: string;
  tokens: number[];
  promptTokens: number[];
  finishReason: string;
  timings: { prefillMs: number; decodeTokPerS: number; threads: number; backend: string };
}

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const runArgs = (model: string, ...extra: string[]) => ['run', '--model', model, '--prompt', 'Once upon a time', '--max-tokens', '20', '--temperature', '0', '--json', ...extra];

/** The JSON object is the last stdout line (nothing else should print there, but a notice would come first). */
function parseJson(stdout: string): RunJson {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as RunJson;
}

/** A user-facing failure: non-zero exit, one line naming the problem, no stack trace. */
function expectCleanFailure(res: { code: number | null; stderr: string; stdout: string }, pattern: RegExp): void {
  expect(res.code).not.toBe(0);
  expect(res.code).not.toBeNull();
  const lines = res.stderr.trim().split('\n');
  expect(lines, res.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^edge-node run: /);
  expect(lines[0]).toMatch(pattern);
  expect(res.stderr).not.toMatch(/\n\s+at /);
  expect(res.stdout).toBe('');
}

let dir = '';
beforeAll(async () => {
  if (!existsSync(join(ROOT, 'packages/cli/dist/main.js')) || !existsSync(join(ROOT, 'packages/node/dist/index.js'))) {
    throw new Error('the CLI is not built: run `npm run build` first');
  }
  dir = await mkdtemp(join(tmpdir(), 'cli-run-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('edge-node run --json', () => {
  it('prints the greedy continuation of stories260K with its tokens, prompt tokens, finish reason and timings', async () => {
    const res = await cli(runArgs(STORIES, '--threads', '1'));
    expect(res.code, res.stderr).toBe(0);
    const wasm = parseJson(res.stdout);
    // BOS is prepended, as llama.cpp does for this model.
    expect(wasm.promptTokens).toEqual(reference.prompt_ids_with_bos);
    expect(wasm.promptTokens).toEqual([1, 403, 407, 261, 378]);
    // Greedy from BOS runs through "Once upon a time", so its tail is the prompt's greedy continuation.
    expect(wasm.tokens).toEqual(reference.greedy_from_bos_ids.slice(4, 24));
    expect(reference.greedy_from_bos_text.startsWith(`Once upon a time${wasm.text}`)).toBe(true);
    expect(wasm.text.startsWith(', there was a little girl named Lily')).toBe(true);
    expect(wasm.finishReason).toBe('length');
    expect(wasm.timings.prefillMs).toBeGreaterThan(0);
    expect(wasm.timings.decodeTokPerS).toBeGreaterThan(0);
    expect(Number.isFinite(wasm.timings.decodeTokPerS)).toBe(true);
    expect(wasm.timings.threads).toBe(1);
    expect(wasm.timings.backend).toBe('kernels');
  });

  it('--backend tfjs (tfjs-node is not installed here: tfjs-backend-wasm) gives the same greedy tokens', async () => {
    const res = await cli(runArgs(STORIES, '--backend', 'tfjs'));
    expect(res.code, res.stderr).toBe(0);
    const tfjs = parseJson(res.stdout);
    expect(tfjs.timings.backend).toBe('tfjs-wasm');
    expect(tfjs.tokens).toEqual(reference.greedy_from_bos_ids.slice(4, 24));
    expect(reference.greedy_from_bos_text.startsWith(`Once upon a time${tfjs.text}`)).toBe(true);
  });

  it('--threads 2 and --kv-cache f32 give the same tokens', async () => {
    const res = await cli(runArgs(STORIES, '--threads', '2', '--kv-cache', 'f32'));
    expect(res.code, res.stderr).toBe(0);
    const two = parseJson(res.stdout);
    expect(two.timings.threads).toBe(2);
    expect(two.tokens).toEqual(reference.greedy_from_bos_ids.slice(4, 24));
    expect(reference.greedy_from_bos_text.startsWith(`Once upon a time${two.text}`)).toBe(true);
  });

  it('--kv-cache q8_0 runs a model with heads of 64 (its tokens close to the F32 cache\'s); on stories260K\'s heads of 8 it is refused naming the head size', async () => {
    const g = await generateSyntheticModel({
      preset: 'tiny-smollm2',
      config: { hiddenSize: 128, numHeads: 2, numKvHeads: 1, headDim: 64 },
      numLayers: 2,
      format: 'gguf',
      tokenizerDir: join(SHARED, 'smollm2-135m-instruct-tokenizer'),
      outPath: join(dir, 'heads64.gguf'),
    });
    const q8 = await cli(runArgs(g.path, '--kv-cache', 'q8_0'));
    expect(q8.code, q8.stderr).toBe(0);
    const out = parseJson(q8.stdout);
    expect(out.tokens).toHaveLength(20);
    const f32 = parseJson((await cli(runArgs(g.path, '--kv-cache', 'f32'))).stdout);
    // Random weights: near-ties part greedy paths sooner or later; the first tokens agree.
    expect(out.tokens.slice(0, 4)).toEqual(f32.tokens.slice(0, 4));
    const refused = await cli(runArgs(STORIES, '--kv-cache', 'q8_0'));
    expectCleanFailure(refused, /--kv-cache q8_0 needs a head size that is a multiple of 32.*heads have 8/);
  });

  it('a stop string ends the text before it with finishReason "stop"', async () => {
    const res = await cli(runArgs(STORIES, '--stop', 'Lily'));
    expect(res.code, res.stderr).toBe(0);
    const out = parseJson(res.stdout);
    expect(out.finishReason).toBe('stop');
    const full = reference.greedy_from_bos_text.slice('Once upon a time'.length);
    expect(out.text).toBe(full.slice(0, full.indexOf('Lily')));
  });
});

describe('edge-node run resolves its model as edge-node start does', () => {
  it('without --model and no Hub: the demo model shipped with edge-node, said on stderr, at the CLI\'s default length', async () => {
    const res = await cli(['run', '--prompt', 'Once upon a time', '--temperature', '0', '--ignore-eos', '--json', '--data-dir', dir], { HF_ENDPOINT: 'http://127.0.0.1:9' });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/no --model given and the Hub at http:\/\/127\.0\.0\.1:9 is not reachable .*the demo model shipped with edge-node, stories260K/);
    const out = parseJson(res.stdout);
    expect(out.promptTokens).toEqual([1, 403, 407, 261, 378]);
    // 256 tokens, as edge-node chat (generation-defaults.ts).
    expect(out.tokens).toHaveLength(256);
  });
});

describe('edge-node run errors', () => {
  it('a missing model file: exit non-zero, one line, no stack trace', async () => {
    const missing = join(dir, 'no-such-model.gguf');
    expectCleanFailure(await cli(runArgs(missing)), /no-such-model\.gguf.*does not exist/);
  });

  it('a file that is not a model: exit non-zero, one line, no stack trace', async () => {
    const junk = join(dir, 'junk.gguf');
    await writeFile(junk, 'this is not a GGUF file, just some text that happens to end in .gguf\n'.repeat(20));
    expectCleanFailure(await cli(runArgs(junk)), /junk\.gguf/);
  });

  it('a truncated GGUF (an interrupted download): exit non-zero, one line, no stack trace', async () => {
    const truncated = join(dir, 'truncated.gguf');
    await copyFile(STORIES, truncated);
    const size = (await stat(truncated)).size;
    const h = await open(truncated, 'r+');
    await h.truncate(Math.floor(size * 0.6));
    await h.close();
    expectCleanFailure(await cli(runArgs(truncated)), /truncated\.gguf.*truncated/);
  });

  it('--kv-cache nonsense and --threads 0 are usage errors (exit 2) naming the choices', async () => {
    const res = await cli(runArgs(STORIES, '--kv-cache', 'nonsense'));
    expectCleanFailure(res, /"nonsense"/);
    expect(res.stderr).toMatch(/f16, f32, q8_0/);
    expect(res.code).toBe(2);
    const zero = await cli(runArgs(STORIES, '--threads', '0'));
    expectCleanFailure(zero, /--threads/);
    expect(zero.code).toBe(2);
  });

  it('--backend gpu is a usage error naming the choices; tfjs with an F16 KV cache contradicts itself', async () => {
    const res = await cli(runArgs(STORIES, '--backend', 'gpu'));
    expectCleanFailure(res, /--backend: .*kernels, tfjs.*"gpu"/);
    expect(res.code).toBe(2);
    const f16 = await cli(runArgs(STORIES, '--backend', 'tfjs', '--kv-cache', 'f16'));
    expectCleanFailure(f16, /tfjs backend keeps its KV cache in F32/);
    expect(f16.code).toBe(2);
    const q8 = await cli(runArgs(STORIES, '--backend', 'tfjs', '--kv-cache', 'q8_0'));
    expectCleanFailure(q8, /tfjs backend keeps its KV cache in F32: --kv-cache q8_0 applies to the kernels backend only/);
    expect(q8.code).toBe(2);
  });

  it('--lora: a missing file or a lone --lora-scale is a usage error; a model given as an adapter is refused by name', async () => {
    const missing = await cli(runArgs(STORIES, '--lora', join(dir, 'absent.gguf')));
    expectCleanFailure(missing, /--lora .*absent\.gguf does not exist/);
    expect(missing.code).toBe(2);
    const scale = await cli(runArgs(STORIES, '--lora-scale', '2'));
    expectCleanFailure(scale, /--lora-scale needs --lora ADAPTER\.gguf/);
    expect(scale.code).toBe(2);
    const nan = await cli(runArgs(STORIES, '--lora', STORIES, '--lora-scale', 'big'));
    expectCleanFailure(nan, /--lora-scale needs a number \(got "big"\)/);
    const model = await cli(runArgs(STORIES, '--lora', STORIES));
    expectCleanFailure(model, /stories260K\.gguf: general\.type is \(absent\), expected "adapter"/);
    expect(model.code).toBe(1);
  });

  it('a quantised file with --backend tfjs: one line naming the tensor type and the kernels backend', async () => {
    const res = await cli(runArgs(join(SHARED, 'stories260k', 'stories260K-Q8_0.gguf'), '--backend', 'tfjs'));
    expectCleanFailure(res, /is Q8_0: the tfjs backend computes only F32, F16 and BF16 weights\. Use the default kernels backend/);
    expect(res.code).toBe(1);
  });
});
