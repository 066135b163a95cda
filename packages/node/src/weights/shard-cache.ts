import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TensorStore } from './tensor-store.js';

/**
 * Tensors fetched from peers, one file per tensor named by the SHA-256 of its stored bytes. Content addressing
 * makes reuse trivial: after a restart or a re-plan, a tensor whose hash is on disk is read locally and only
 * missing ones are fetched. Files are written under a temporary name and renamed, so a crash leaves no half tensor.
 */
export class ShardCache implements TensorStore {
  constructor(readonly dir: string) {}

  pathOf(sha256: string): string {
    return join(this.dir, `${sha256}.tensor`);
  }

  /** The stored bytes, if present and intact; a damaged file is deleted (and so fetched again). */
  async read(sha256: string, byteLength: number): Promise<Uint8Array | null> {
    const path = this.pathOf(sha256);
    const st = await stat(path).catch(() => null);
    if (!st) return null;
    if (st.size === byteLength) {
      const data = await readFile(path);
      if (createHash('sha256').update(data).digest('hex') === sha256) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    await unlink(path).catch(() => {});
    return null;
  }

  async has(sha256: string, byteLength: number): Promise<boolean> {
    return (await stat(this.pathOf(sha256)).catch(() => null))?.size === byteLength;
  }

  async write(sha256: string, bytes: Uint8Array): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const path = this.pathOf(sha256);
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  }

  /** Bytes of all tensors stored here. */
  async storedBytes(): Promise<number> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    let total = 0;
    for (const n of names) if (n.endsWith('.tensor')) total += (await stat(join(this.dir, n)).catch(() => null))?.size ?? 0;
    return total;
  }
}
