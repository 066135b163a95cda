import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadHubModel, type DownloadProgress } from '../packages/node/src/model/hub-download.js';
import { HubAccessError, HubChecksumError, HubDownloadInterruptedError, HubNotFoundError, HubOfflineError, HubRefError } from '../packages/node/src/model/hub-errors.js';
import { parseHubModelRef } from '../packages/node/src/model/hub-model-ref.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { LocalHubServer } from './support/local-hub-server.js';
import { CLI_BIN, ensureBuilt } from './support/cluster-harness.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const MODELS = '/work/shared/models';
const HF_REPO = 'karpathy/stories260k-hf';
const GGUF_REPO = 'ggml-org/stories260k-gguf';
const GATED_REPO = 'meta/stories260k-gated';
const TOKEN = 'hf_localtesttoken';

const ref = (text: string) => {
  const r = parseHubModelRef(text);
  if (!r) throw new Error(`not a ref: ${text}`);
  return r;
};
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

let hub: LocalHubServer;
const dirs: string[] = [];
const freshCache = () => {
  const d = mkdtempSync(join(tmpdir(), 'edge-hub-'));
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  hub = await new LocalHubServer([
    { repo: HF_REPO, dir: join(MODELS, 'stories260k-hf') },
    { repo: GGUF_REPO, dir: join(MODELS, 'stories260k'), files: ['stories260K.gguf', 'stories260K-Q8_0.gguf', 'reference_outputs.json'] },
    { repo: GATED_REPO, dir: join(MODELS, 'stories260k-hf'), gatedToken: TOKEN },
  ]).start();
});
afterAll(async () => {
  await hub?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('parseHubModelRef', () => {
  it('reads repo, revision and file, and leaves paths alone', () => {
    expect(parseHubModelRef('HuggingFaceTB/SmolLM2-135M-Instruct')).toEqual({ repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main', file: null });
    expect(parseHubModelRef('a/b@v1.0/sub/x.gguf')).toEqual({ repo: 'a/b', revision: 'v1.0', file: 'sub/x.gguf' });
    expect(parseHubModelRef('./models/x')).toBeNull();
    expect(parseHubModelRef('/abs/x')).toBeNull();
    expect(parseHubModelRef('model.gguf')).toBeNull();
    expect(() => parseHubModelRef('a/b@')).toThrow(HubRefError);
  });
});

describe('downloadHubModel against a local hub', () => {
  it('downloads only the files a safetensors model needs, with progress, and the result opens', async () => {
    const cacheDir = freshCache();
    const events: DownloadProgress[] = [];
    const r = await downloadHubModel(ref(HF_REPO), { cacheDir, endpoint: hub.url, onProgress: (p) => events.push({ ...p }) });
    expect(r.fromCache).toBe(false);
    expect(r.commit).toBe(hub.commitOf(HF_REPO));
    expect(r.files.map((f) => f.path).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const total = r.files.reduce((a, f) => a + f.size, 0);
    expect(r.downloadedBytes).toBe(total);
    // Progress: never decreasing, ends at the total, and the big file reports intermediate states.
    for (let i = 1; i < events.length; i++) expect(events[i].bytes).toBeGreaterThanOrEqual(events[i - 1].bytes);
    expect(events.at(-1)!.bytes).toBe(total);
    expect(events.filter((e) => e.file === 'model.safetensors' && e.fileBytes > 0 && e.fileBytes < e.fileTotal).length).toBeGreaterThan(0);
    expect(sha256(join(r.modelPath, 'model.safetensors'))).toBe(sha256(join(MODELS, 'stories260k-hf/model.safetensors')));
    const model = await openModel(r.modelPath);
    expect(model.config.numLayers).toBe(5);
    expect(model.format).toBe('safetensors');
    await model.close();
  });

  it('asks to pick one GGUF when a repo has several, and fetches only the chosen one', async () => {
    const cacheDir = freshCache();
    await expect(downloadHubModel(ref(GGUF_REPO), { cacheDir, endpoint: hub.url })).rejects.toThrow(/several GGUF files.*stories260K-Q8_0\.gguf/);
    const r = await downloadHubModel(ref(`${GGUF_REPO}/stories260K-Q8_0.gguf`), { cacheDir, endpoint: hub.url });
    expect(r.files.map((f) => f.path)).toEqual(['stories260K-Q8_0.gguf']);
    expect(r.modelPath.endsWith('stories260K-Q8_0.gguf')).toBe(true);
    expect(sha256(r.modelPath)).toBe(sha256(join(MODELS, 'stories260k/stories260K-Q8_0.gguf')));
  });

  it('resumes a cut download with a Range request, within a call and across calls', async () => {
    const file = 'stories260K.gguf';
    const size = hub.fileInfo(GGUF_REPO, file).size;
    const cacheDir = freshCache();
    hub.faults = { cut: { file, afterBytes: 300_000, times: 1 } };
    const before = hub.resolveRequests(file).length;
    const r1 = await downloadHubModel(ref(`${GGUF_REPO}/${file}`), { cacheDir, endpoint: hub.url });
    const seen = hub.resolveRequests(file).slice(before);
    expect(seen.some((q) => q.range === 'bytes=300000-' + (size - 1) && q.status === 206)).toBe(true);
    expect(sha256(r1.modelPath)).toBe(sha256(join(MODELS, 'stories260k', file)));

    // Every attempt cut: the call fails, the partial file stays, and the next call fetches only the rest.
    const cacheDir2 = freshCache();
    hub.faults = { cut: { file, afterBytes: 400_000, times: 2 } };
    const err = await downloadHubModel(ref(`${GGUF_REPO}/${file}`), { cacheDir: cacheDir2, endpoint: hub.url, attempts: 2 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(HubDownloadInterruptedError);
    expect((err as Error).message).toMatch(/run the command again to resume/);
    const blobs = join(cacheDir2, `models--${GGUF_REPO.replace('/', '--')}`, 'blobs');
    const partial = readdirSync(blobs).find((n) => n.endsWith('.incomplete'))!;
    const kept = statSync(join(blobs, partial)).size;
    expect(kept).toBe(800_000); // two cut attempts of 400,000 bytes each, the second resumed after the first
    hub.faults = {};
    const r2 = await downloadHubModel(ref(`${GGUF_REPO}/${file}`), { cacheDir: cacheDir2, endpoint: hub.url });
    expect(r2.downloadedBytes).toBe(size - kept);
    expect(hub.resolveRequests(file).at(-1)!.range).toBe(`bytes=${kept}-${size - 1}`);
    expect(sha256(r2.modelPath)).toBe(sha256(join(MODELS, 'stories260k', file)));
  });

  it('names the missing file, repo or revision on a 404', async () => {
    const cacheDir = freshCache();
    const e1 = await downloadHubModel(ref(`${GGUF_REPO}/stories1M.gguf`), { cacheDir, endpoint: hub.url }).catch((e: Error) => e);
    expect(e1).toBeInstanceOf(HubNotFoundError);
    expect((e1 as HubNotFoundError).what).toBe('file');
    expect((e1 as Error).message).toContain('stories1M.gguf');
    const e2 = await downloadHubModel(ref('nobody/nothing'), { cacheDir, endpoint: hub.url }).catch((e: Error) => e);
    expect((e2 as HubNotFoundError).what).toBe('repo');
    const e3 = await downloadHubModel(ref(`${HF_REPO}@v9`), { cacheDir, endpoint: hub.url }).catch((e: Error) => e);
    expect((e3 as HubNotFoundError).what).toBe('revision');
    expect((e3 as Error).message).toContain('"v9"');
  });

  it('deletes a download whose SHA-256 does not match the hub', async () => {
    const cacheDir = freshCache();
    hub.faults = { corrupt: { file: 'model.safetensors', offset: 5000 } };
    const err = await downloadHubModel(ref(HF_REPO), { cacheDir, endpoint: hub.url }).catch((e: Error) => e);
    hub.faults = {};
    expect(err).toBeInstanceOf(HubChecksumError);
    expect((err as Error).message).toContain(hub.fileInfo(HF_REPO, 'model.safetensors').sha256);
    const blobs = readdirSync(join(cacheDir, `models--${HF_REPO.replace('/', '--')}`, 'blobs'));
    expect(blobs.some((n) => n.startsWith(hub.fileInfo(HF_REPO, 'model.safetensors').sha256))).toBe(false);
    // The next attempt (hub healthy again) succeeds.
    const ok = await downloadHubModel(ref(HF_REPO), { cacheDir, endpoint: hub.url });
    expect(ok.files.length).toBe(4);
  });

  it('says a gated model needs HF_TOKEN (401), that the token lacks access (403), and works with the token', async () => {
    const cacheDir = freshCache();
    const e401 = await downloadHubModel(ref(GATED_REPO), { cacheDir, endpoint: hub.url }).catch((e: Error) => e);
    expect(e401).toBeInstanceOf(HubAccessError);
    expect((e401 as HubAccessError).status).toBe(401);
    expect((e401 as Error).message).toMatch(/gated model.*HF_TOKEN/);
    const e403 = await downloadHubModel(ref(GATED_REPO), { cacheDir, endpoint: hub.url, token: 'hf_someoneelse' }).catch((e: Error) => e);
    expect((e403 as HubAccessError).status).toBe(403);
    expect((e403 as Error).message).toMatch(/gated model.*no access/);
    const ok = await downloadHubModel(ref(GATED_REPO), { cacheDir, endpoint: hub.url, token: TOKEN });
    expect(ok.files.length).toBe(4);
  });

  it('reuses a complete download without any request, and is clear offline when nothing is cached', async () => {
    const cacheDir = freshCache();
    const first = await downloadHubModel(ref(HF_REPO), { cacheDir, endpoint: hub.url });
    const requests = hub.requests.length;
    // A dead endpoint: any request would fail.
    const again = await downloadHubModel(ref(HF_REPO), { cacheDir, endpoint: 'http://127.0.0.1:9' });
    expect(hub.requests.length).toBe(requests);
    expect(again.fromCache).toBe(true);
    expect(again.modelPath).toBe(first.modelPath);
    const model = await openModel(again.modelPath);
    expect(model.config.vocabSize).toBe(512);
    await model.close();
    await expect(downloadHubModel(ref(GGUF_REPO + '/stories260K.gguf'), { cacheDir, offline: true })).rejects.toBeInstanceOf(HubOfflineError);
    const unreachable = await downloadHubModel(ref(GGUF_REPO + '/stories260K.gguf'), { cacheDir, endpoint: 'http://127.0.0.1:9' }).catch((e: Error) => e);
    expect((unreachable as Error).message).toMatch(/cannot reach the hub at http:\/\/127\.0\.0\.1:9/);
  });

  it('edge-node download prints the cached path, and a clear error for a missing file', async () => {
    ensureBuilt();
    const run = promisify(execFile);
    const dataDir = freshCache();
    const ok = await run(process.execPath, [CLI_BIN, 'download', GGUF_REPO, 'stories260K.gguf', '--data-dir', dataDir, '--hub-endpoint', hub.url]);
    const path = ok.stdout.trim();
    expect(path.startsWith(join(dataDir, 'hub'))).toBe(true);
    expect(sha256(path)).toBe(sha256(join(MODELS, 'stories260k/stories260K.gguf')));
    expect(ok.stderr).toMatch(/\[#{24}\] 100% 1\.19\/1\.19 MB/);
    const missing = await run(process.execPath, [CLI_BIN, 'download', GGUF_REPO, 'nope.gguf', '--data-dir', dataDir, '--hub-endpoint', hub.url]).catch((e: { code: number; stderr: string }) => e);
    expect((missing as { code: number }).code).toBe(1);
    expect((missing as { stderr: string }).stderr).toMatch(/file nope\.gguf was not found in ggml-org\/stories260k-gguf \(HTTP 404\)/);
  });
});
