/**
 * `edge-node finetune` as a user runs it (the built CLI in a process): a bad data line refused with its number before
 * any compute, --api's errors without a node, and a short run on stories260K (text and chat lines) writing an adapter
 * that `readLoraAdapter` takes for that model, with progress lines on stderr.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel, readLoraAdapter } from '@edge-node/node';

const root = resolve(import.meta.dirname, '../../..');
const bin = join(root, 'packages/cli/bin/edge-node.js');
const model = join(root, 'packages/node/models/stories260K.gguf');
let dir = '';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'finetune', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  // The test runs the built CLI: bring dist/ up to date (incremental, fast when nothing changed).
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'packages/node', 'packages/cli'], { cwd: root, stdio: 'pipe' });
  } catch {
    // Another package's type errors must not hide this command's behaviour; dist/ is checked below.
  }
  expect(existsSync(join(root, 'packages/cli/dist/commands/finetune.js'))).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'edge-finetune-'));
  const chat = { messages: [{ role: 'user', content: 'What did the cat say?' }, { role: 'assistant', content: 'The cat said moo.' }] };
  writeFileSync(join(dir, 'good.jsonl'), [{ text: 'Tom saw a cat. The cat said moo.' }, chat, { text: 'Lily saw a dog. The dog said moo.' }].map((l) => JSON.stringify(l)).join('\n'));
  writeFileSync(join(dir, 'bad.jsonl'), '{"text": "Tom saw a cat."}\n{"messages": [{"role": "user", "content": "hi"}]}\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edge-node finetune', () => {
  it('refuses a bad line with its number, and a missing flag, with exit codes 1 and 2', () => {
    const bad = cli('--model', model, '--data', join(dir, 'bad.jsonl'), '--out', join(dir, 'a.gguf'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bad\.jsonl line 2: no assistant message/);
    expect(existsSync(join(dir, 'a.gguf'))).toBe(false);
    const missing = cli('--model', model, '--out', join(dir, 'a.gguf'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--data is required/);
    expect(cli('--model', model, '--data', join(dir, 'good.jsonl'), '--out', join(dir, 'a.gguf'), '--rank', '0').stderr).toMatch(/--rank must be a positive integer/);
  });

  it('with --api, says when no node answers (exit 1) and refuses --threads (exit 2); the cluster run is test/finetune-pipeline.test.ts', () => {
    expect(cli('--help').stdout).toMatch(/--api URL\s+train on the cluster of the running node at URL/);
    const api = cli('--data', join(dir, 'good.jsonl'), '--out', join(dir, 'a.gguf'), '--api', 'http://127.0.0.1:1');
    expect(api.code).toBe(1);
    expect(api.stderr).toMatch(/no edge-node answers at http:\/\/127\.0\.0\.1:1/);
    expect(existsSync(join(dir, 'a.gguf'))).toBe(false);
    const threads = cli('--data', join(dir, 'good.jsonl'), '--out', join(dir, 'a.gguf'), '--api', 'http://127.0.0.1:1', '--threads', '2');
    expect(threads.code).toBe(2);
    expect(threads.stderr).toMatch(/--threads is for training on this device/);
  });

  it('trains and writes an adapter the model takes, reporting loss, tokens/s and ETA', async () => {
    const out = join(dir, 'moo.gguf');
    const r = cli('--model', model, '--data', join(dir, 'good.jsonl'), '--out', out, '--steps', '5', '--batch', '2', '--rank', '2', '--lr', '0.01');
    expect(r.stderr).toMatch(/step 5\/5 \[#+\] loss \d+\.\d{4}\s+\d+ tok\/s\s+ETA 0:00/);
    expect(r.stderr).toMatch(/5 steps on 3 examples/);
    expect(r.code).toBe(0);
    const base = await openModel(model);
    try {
      const adapter = await readLoraAdapter(out, base);
      expect(adapter.tensors.size).toBe(base.config.numLayers * 7);
      expect([...adapter.tensors.values()].every((p) => p.rank === 2)).toBe(true);
      // Five steps moved B away from its zero start.
      expect([...adapter.tensors.values()].some((p) => p.b.some((x) => x !== 0))).toBe(true);
    } finally {
      await base.close();
    }
  });

  it('gives the same adapter bits on one thread and on two (every product reduces a row the same way)', () => {
    const files = ['1', '2'].map((threads) => {
      const out = join(dir, `t${threads}.gguf`);
      const r = cli('--model', model, '--data', join(dir, 'good.jsonl'), '--out', out, '--steps', '3', '--batch', '2', '--rank', '2', '--threads', threads);
      expect(r.code).toBe(0);
      return readFileSync(out);
    });
    expect(files[0].equals(files[1])).toBe(true);
  });
});
