import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, statfs, symlink, truncate, unlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { downloadFile, fileDownloadInfo, HubApiError, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { HubCache, type CachedDownload } from './hub-cache.js';
import {
  HubAccessError,
  HubChecksumError,
  HubDiskFullError,
  HubDownloadInterruptedError,
  HubError,
  HubNotFoundError,
  HubOfflineError,
  HubRefError,
  HubResponseError,
} from './hub-errors.js';
import { formatHubModelRef, type HubModelRef } from './hub-model-ref.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export interface DownloadProgress {
  /** File being downloaded (path in the repo). */
  file: string;
  fileBytes: number;
  fileTotal: number;
  /** All files of this download: bytes present (including ones already in the cache) and the total. */
  bytes: number;
  totalBytes: number;
  /** Bytes that were already on disk when this call started (cached or a partial download being resumed). */
  reusedBytes: number;
}

export interface HubDownloadOptions {
  /** Cache root (huggingface_hub layout), e.g. `<data dir>/hub`. */
  cacheDir: string;
  /** Hub base URL (HF_ENDPOINT). Default https://huggingface.co. */
  endpoint?: string;
  /** Access token (HF_TOKEN) for gated or private repos. */
  token?: string;
  /** Use only the cache (HF_HUB_OFFLINE=1). */
  offline?: boolean;
  onProgress?: (p: DownloadProgress) => void;
  /** Attempts per file when the connection breaks (each resumes with a Range request). Default 3. */
  attempts?: number;
}

export interface HubDownloadResult extends CachedDownload {
  /** True when the cache already held a complete download (no request was made). */
  fromCache: boolean;
  /** Bytes fetched over the network by this call. */
  downloadedBytes: number;
}

/** Hub settings from the environment: HF_ENDPOINT, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), HF_HUB_OFFLINE. */
export function hubOptionsFromEnv(env: NodeJS.ProcessEnv): Pick<HubDownloadOptions, 'endpoint' | 'token' | 'offline'> {
  const token = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  const offline = env.HF_HUB_OFFLINE;
  return {
    ...(env.HF_ENDPOINT ? { endpoint: env.HF_ENDPOINT } : {}),
    ...(token ? { token } : {}),
    offline: offline !== undefined && offline !== '' && offline !== '0' && offline.toLowerCase() !== 'false',
  };
}

/** Files of a Hugging Face (safetensors) model folder that edge-node reads; everything else in a repo is skipped. */
const HF_MODEL_FILES = new Set(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'model.safetensors.index.json']);

interface PlannedFile {
  path: string;
  size: number;
  /** SHA-256 the hub announces for LFS files. */
  sha256: string | null;
  /** Git blob id (SHA-1 of "blob <size>\0" + content) for small files kept in git. */
  gitOid: string | null;
}

/** The files a model needs, from the repo's root listing. */
export function selectModelFiles(ref: HubModelRef, entries: ListFileEntry[]): PlannedFile[] {
  const files = entries.filter((e) => e.type === 'file');
  const byPath = new Map(files.map((e) => [e.path, e]));
  const root = files.filter((e) => !e.path.includes('/'));
  let chosen: ListFileEntry[];
  if (ref.file !== null) {
    const f = byPath.get(ref.file);
    if (!f) throw new HubNotFoundError(ref.repo, 'file', ref.file);
    chosen = f.path.endsWith('.gguf') ? [f] : [f, ...root.filter((e) => HF_MODEL_FILES.has(e.path) && e.path !== f.path)];
  } else if (root.some((e) => e.path.endsWith('.safetensors')) && byPath.has('config.json')) {
    chosen = root.filter((e) => HF_MODEL_FILES.has(e.path) || e.path.endsWith('.safetensors'));
  } else {
    const ggufs = root.filter((e) => e.path.endsWith('.gguf'));
    if (ggufs.length === 0) {
      throw new HubResponseError(`${ref.repo} has neither config.json + .safetensors weights nor a .gguf file at its top level, so edge-node cannot load it`);
    }
    if (ggufs.length > 1) {
      const names = ggufs.map((g) => `${g.path} (${(g.size / 1e6).toFixed(1)} MB)`).join(', ');
      throw new HubRefError(`${ref.repo} holds several GGUF files: ${names}; pick one, e.g. ${ref.repo}/${ggufs[0].path}`);
    }
    chosen = ggufs;
  }
  return chosen.map((e) => ({
    path: e.path,
    size: e.lfs?.size ?? e.size,
    sha256: e.lfs?.oid ?? null,
    gitOid: e.lfs ? null : (e.oid ?? null),
  }));
}

function describeFetchFailure(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/** Maps the library's errors (and fetch failures) onto ours. */
function hubError(err: unknown, ref: HubModelRef, endpoint: string, file?: string): Error {
  if (err instanceof HubError) return err;
  if (err instanceof HubApiError) {
    const detail = err.message.split('. URL:')[0];
    if (err.statusCode === 401 || err.statusCode === 403) {
      return new HubAccessError(ref.repo, err.statusCode, /gated|restricted/i.test(detail), detail);
    }
    if (err.statusCode === 404) {
      if (/revision|rev id/i.test(detail)) return new HubNotFoundError(ref.repo, 'revision', ref.revision);
      if (file !== undefined && /entry/i.test(detail)) return new HubNotFoundError(ref.repo, 'file', file);
      return new HubNotFoundError(ref.repo, 'repo', ref.repo);
    }
    return new HubResponseError(`the hub at ${endpoint} answered HTTP ${err.statusCode} for ${file ?? ref.repo}: ${detail}`);
  }
  if (err instanceof TypeError && /token/i.test(err.message)) return new HubRefError(`HF_TOKEN is not a hub access token: ${err.message}`);
  return new HubResponseError(`cannot reach the hub at ${endpoint} (${describeFetchFailure(err)}); check the network or HF_ENDPOINT`);
}

/** Server ignored our Range header (answered 200 with the whole file): the partial file cannot be resumed. */
class RangeIgnoredError extends Error {
  override name = 'RangeIgnoredError';
}

/**
 * fetch for the hub library: adds nothing, but refuses a 200 answer to a resuming Range request, which would
 * otherwise append the file's start to the partial download.
 */
const rangeCheckingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const range = new Headers(init?.headers).get('range');
  if (range && !range.startsWith('bytes=0-') && res.status === 200) {
    await res.body?.cancel();
    throw new RangeIgnoredError('the server ignored the Range request');
  }
  return res;
};

function stripEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

async function hashFile(path: string, hashes: Hash[]): Promise<void> {
  for await (const chunk of createReadStream(path)) for (const h of hashes) h.update(chunk as Buffer);
}

async function freeBytes(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/**
 * Downloads what a model needs from the hub into the cache and returns the path to open. A complete earlier
 * download of the same ref is used without any request. Partial downloads resume with Range requests; sizes and
 * hashes (LFS SHA-256, git blob SHA-1) are checked, and a corrupt file is removed.
 */
export async function downloadHubModel(ref: HubModelRef, options: HubDownloadOptions): Promise<HubDownloadResult> {
  const cache = new HubCache(options.cacheDir);
  const cached = await cache.lookup(ref);
  if (cached) return { ...cached, fromCache: true, downloadedBytes: 0 };
  if (options.offline) throw new HubOfflineError(formatHubModelRef(ref), options.cacheDir);

  const endpoint = (options.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
  const common = { hubUrl: endpoint, fetch: rangeCheckingFetch, ...(options.token ? { accessToken: options.token } : {}) };
  let commit: string;
  let planned: PlannedFile[];
  try {
    const info = await modelInfo({ name: ref.repo, revision: ref.revision, additionalFields: ['sha'], ...common });
    commit = String((info as { sha?: unknown }).sha ?? '');
    if (!/^[0-9a-f]{40}$/.test(commit)) throw new HubResponseError(`the hub at ${endpoint} did not return a commit for ${ref.repo}@${ref.revision}`);
    const entries: ListFileEntry[] = [];
    for await (const e of listFiles({ repo: { type: 'model', name: ref.repo }, revision: commit, recursive: ref.file?.includes('/') ?? false, ...common })) {
      entries.push(e);
    }
    planned = selectModelFiles(ref, entries);
  } catch (err) {
    throw hubError(err, ref, endpoint);
  }

  const snapshot = cache.snapshotDir(ref.repo, commit);
  const totalBytes = planned.reduce((a, f) => a + f.size, 0);
  const state = { done: 0, reused: 0, downloaded: 0 };
  for (const f of planned) {
    const blob = await downloadOne(ref, commit, f, { cache, endpoint, common, options, totalBytes, state });
    const link = join(snapshot, f.path);
    await mkdir(dirname(link), { recursive: true });
    await rm(link, { force: true });
    await symlink(relative(dirname(link), blob), link);
  }
  const record: CachedDownload = {
    repo: ref.repo,
    revision: ref.revision,
    commit,
    files: planned.map((f) => ({ path: f.path, size: f.size })),
    modelPath: ref.file !== null && ref.file.endsWith('.gguf') ? join(snapshot, ref.file) : snapshot,
  };
  await cache.remember(ref, record);
  return { ...record, fromCache: false, downloadedBytes: state.downloaded };
}

interface DownloadContext {
  cache: HubCache;
  endpoint: string;
  common: { hubUrl: string; fetch: typeof fetch; accessToken?: string };
  options: HubDownloadOptions;
  totalBytes: number;
  state: { done: number; reused: number; downloaded: number };
}

/** One file into blobs/<etag> (via <etag>.incomplete), resuming and verifying. Returns the blob path. */
async function downloadOne(ref: HubModelRef, commit: string, f: PlannedFile, ctx: DownloadContext): Promise<string> {
  const { info, etag } = await servedFile(ref, commit, f, ctx);
  const blobPath = ctx.cache.blobPath(ref.repo, etag);
  const state = ctx.state;
  const d: FileDownload = {
    ref,
    commit,
    f,
    info,
    ctx,
    blobPath,
    partial: `${blobPath}.incomplete`,
    // LFS files: the ETag (X-Linked-Etag) is the content's SHA-256, like the listing's lfs.oid.
    sha256: f.sha256 ?? (/^[0-9a-f]{64}$/.test(etag) ? etag : null),
    report: (fileBytes) =>
      ctx.options.onProgress?.({ file: f.path, fileBytes, fileTotal: f.size, bytes: state.done + fileBytes, totalBytes: ctx.totalBytes, reusedBytes: state.reused }),
  };
  const existing = await stat(blobPath).catch(() => null);
  if (existing && existing.size === f.size) {
    state.reused += f.size;
    d.report(f.size);
    state.done += f.size;
    return blobPath;
  }
  await mkdir(dirname(blobPath), { recursive: true });
  const attempts = ctx.options.attempts ?? 3;
  let lastReason = '';
  let have = 0;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    have = await resumeFrom(d);
    if (attempt === 1) state.reused += have;
    const free = await freeBytes(dirname(blobPath));
    if (free !== null && free < f.size - have) throw new HubDiskFullError(dirname(blobPath), f.size - have, free);
    const hashes = await hashesOf(d, have);
    d.report(have);
    const got = await appendBody(d, have, hashes);
    if (typeof got === 'string') {
      lastReason = got;
      continue; // connection cut: resume from what reached the disk
    }
    if (got < f.size) {
      lastReason = `the connection closed after ${got - have} bytes`;
      continue;
    }
    await verify(d, hashes);
    await rename(d.partial, blobPath);
    state.done += f.size;
    return blobPath;
  }
  throw new HubDownloadInterruptedError(ref.repo, f.path, have, f.size, lastReason);
}

type FileInfo = NonNullable<Awaited<ReturnType<typeof fileDownloadInfo>>>;

/** One file being downloaded: what the hub serves, where it goes, and how it is checked. */
interface FileDownload {
  ref: HubModelRef;
  commit: string;
  f: PlannedFile;
  info: FileInfo;
  ctx: DownloadContext;
  blobPath: string;
  partial: string;
  /** The SHA-256 its content must have, when known (LFS files). */
  sha256: string | null;
  report(fileBytes: number): void;
}

/** What the hub serves for the file, checked against its listing: its download info and ETag (the blob's name). */
async function servedFile(ref: HubModelRef, commit: string, f: PlannedFile, ctx: DownloadContext): Promise<{ info: FileInfo; etag: string }> {
  const { endpoint, common } = ctx;
  let info;
  try {
    info = await fileDownloadInfo({ repo: { type: 'model', name: ref.repo }, path: f.path, revision: commit, ...common });
  } catch (err) {
    throw hubError(err, ref, endpoint, f.path);
  }
  if (!info) throw new HubNotFoundError(ref.repo, 'file', f.path);
  const etag = stripEtag(info.etag);
  if (!/^[A-Za-z0-9._-]+$/.test(etag)) throw new HubResponseError(`the hub at ${endpoint} sent an unusable ETag for ${f.path}: ${info.etag}`);
  if (info.size !== f.size) {
    throw new HubResponseError(`the hub at ${endpoint} lists ${f.path} with ${f.size} bytes but serves ${info.size} bytes; retry later`);
  }
  return { info, etag };
}

/** Bytes of the partial file to resume from (none if it is longer than the file: it is started again). */
async function resumeFrom(d: FileDownload): Promise<number> {
  const have = (await stat(d.partial).catch(() => null))?.size ?? 0;
  if (have <= d.f.size) return have;
  await truncate(d.partial, 0);
  return 0;
}

/** SHA-256 and git blob SHA-1 of the file, fed with the `have` bytes already on disk. */
async function hashesOf(d: FileDownload, have: number): Promise<Hash[]> {
  const hashes = [createHash('sha256'), createHash('sha1')];
  hashes[1].update(`blob ${d.f.size}\0`);
  if (have > 0) await hashFile(d.partial, hashes);
  return hashes;
}

/**
 * One attempt: the rest of the file from byte `have`, appended to the partial file and hashed. Returns the bytes it
 * holds then, or why the attempt broke off (a connection cut, resumable); errors that retrying cannot cure are thrown.
 */
async function appendBody(d: FileDownload, have: number, hashes: Hash[]): Promise<number | string> {
  const { ref, f, ctx } = d;
  const dir = dirname(d.blobPath);
  const handle = await open(d.partial, 'a');
  let got = have;
  try {
    if (have < f.size) {
      const blob = await downloadFile({ repo: { type: 'model', name: ref.repo }, path: f.path, revision: d.commit, downloadInfo: d.info, xet: false, ...ctx.common });
      if (!blob) throw new HubNotFoundError(ref.repo, 'file', f.path);
      const body = (have > 0 ? blob.slice(have) : blob).stream() as ReadableStream<Uint8Array>;
      for await (const chunk of body) {
        if (got + chunk.byteLength > f.size) throw new HubResponseError(`the hub sent more than the ${f.size} bytes of ${f.path}`);
        try {
          await handle.write(chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new HubDiskFullError(dir, f.size - got, await freeBytes(dir));
          throw err;
        }
        for (const h of hashes) h.update(chunk);
        got += chunk.byteLength;
        ctx.state.downloaded += chunk.byteLength;
        d.report(got);
      }
    }
  } catch (err) {
    await handle.close();
    if (err instanceof HubDiskFullError || err instanceof HubResponseError) throw err;
    if (err instanceof HubApiError) throw hubError(err, ref, ctx.endpoint, f.path);
    if (err instanceof RangeIgnoredError) {
      await truncate(d.partial, 0);
      return err.message;
    }
    return typeof err === 'string' ? err : describeFetchFailure(err);
  }
  await handle.close();
  return got;
}

/** The complete file's hash against the one announced; a corrupt file is removed. */
async function verify(d: FileDownload, hashes: Hash[]): Promise<void> {
  const { ref, f, sha256 } = d;
  const [sha256Hex, sha1Hex] = hashes.map((h) => h.digest('hex'));
  const ok = sha256 !== null ? sha256Hex === sha256 : f.gitOid !== null ? sha1Hex === f.gitOid : true;
  if (ok) return;
  await unlink(d.partial).catch(() => {});
  throw new HubChecksumError(ref.repo, f.path, sha256 !== null ? `SHA-256 ${sha256}` : `git blob ${f.gitOid}`, sha256 !== null ? `SHA-256 ${sha256Hex}` : `git blob ${sha1Hex}`);
}
