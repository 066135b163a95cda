import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HubModelRef } from './hub-model-ref.js';

/**
 * The download cache, laid out like huggingface_hub's (`models--owner--name/{blobs,snapshots/<commit>,refs}`), so
 * files are stored once per content (blobs named by ETag) and a snapshot folder can be opened as a model folder.
 * A record per (revision, file) says which snapshot files make a complete download; with it the cache is used
 * without asking the hub again.
 */
export interface CachedDownload {
  repo: string;
  revision: string;
  /** Commit the revision resolved to. */
  commit: string;
  /** Paths in the repo, each present in the snapshot folder. */
  files: { path: string; size: number }[];
  /** What to open: the snapshot folder, or the one file asked for. */
  modelPath: string;
}

export class HubCache {
  constructor(readonly dir: string) {}

  repoDir(repo: string): string {
    return join(this.dir, `models--${repo.replaceAll('/', '--')}`);
  }

  blobPath(repo: string, etag: string): string {
    return join(this.repoDir(repo), 'blobs', etag);
  }

  snapshotDir(repo: string, commit: string): string {
    return join(this.repoDir(repo), 'snapshots', commit);
  }

  private recordPath(ref: HubModelRef): string {
    const key = `${ref.revision}${ref.file ? `--${ref.file}` : ''}`.replace(/[^A-Za-z0-9._-]/g, '_');
    return join(this.repoDir(ref.repo), 'edge-node', `${key}.json`);
  }

  /** The complete download of `ref`, if the cache has it (every file present with its size). */
  async lookup(ref: HubModelRef): Promise<CachedDownload | null> {
    let record: CachedDownload;
    try {
      record = JSON.parse(await readFile(this.recordPath(ref), 'utf8')) as CachedDownload;
    } catch {
      return null;
    }
    if (typeof record.commit !== 'string' || !Array.isArray(record.files)) return null;
    const snapshot = this.snapshotDir(ref.repo, record.commit);
    for (const f of record.files) {
      const st = await stat(join(snapshot, f.path)).catch(() => null);
      if (!st || st.size !== f.size) return null;
    }
    return record;
  }

  async remember(ref: HubModelRef, record: CachedDownload): Promise<void> {
    const path = this.recordPath(ref);
    await mkdir(join(this.repoDir(ref.repo), 'edge-node'), { recursive: true });
    await writeFile(`${path}.tmp`, JSON.stringify(record, null, 2));
    await rename(`${path}.tmp`, path);
    await mkdir(join(this.repoDir(ref.repo), 'refs'), { recursive: true });
    if (!/^[0-9a-f]{40}$/.test(ref.revision)) await writeFile(join(this.repoDir(ref.repo), 'refs', ref.revision.replaceAll('/', '_')), record.commit);
  }
}
