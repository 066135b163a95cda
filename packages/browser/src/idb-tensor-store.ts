import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { TensorStore } from '@edge-node/node/browser';

const TENSORS = 'tensors';
const SIZES = 'sizes';

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted (storage full?)'));
  });
}

/**
 * The browser node's tensor cache: IndexedDB, one entry per tensor keyed by the SHA-256 of its stored bytes (as the
 * Node ShardCache names its files), so a reload or a re-plan fetches only what is missing. Sizes sit in their own
 * store so the page can show the cached bytes without reading every tensor.
 */
export class IdbTensorStore implements TensorStore {
  private constructor(
    private readonly db: IDBDatabase,
    readonly name: string,
  ) {}

  static async open(name = 'edge-node-weights'): Promise<IdbTensorStore> {
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => {
      open.result.createObjectStore(TENSORS);
      open.result.createObjectStore(SIZES);
    };
    return new IdbTensorStore(await request(open), name);
  }

  pathOf(sha256hex: string): string {
    return `indexeddb:${this.name}/${sha256hex}`;
  }

  async read(sha256hex: string, byteLength: number): Promise<Uint8Array | null> {
    const tx = this.db.transaction(TENSORS, 'readonly');
    const value = (await request(tx.objectStore(TENSORS).get(sha256hex))) as Uint8Array | ArrayBuffer | undefined;
    if (value === undefined) return null;
    const bytes = value instanceof Uint8Array ? value : new Uint8Array(value);
    if (bytes.byteLength === byteLength && bytesToHex(sha256(bytes)) === sha256hex) return bytes;
    await this.remove(sha256hex); // damaged: fetched again
    return null;
  }

  async write(sha256hex: string, bytes: Uint8Array): Promise<void> {
    const tx = this.db.transaction([TENSORS, SIZES], 'readwrite');
    tx.objectStore(TENSORS).put(bytes.slice(), sha256hex);
    tx.objectStore(SIZES).put(bytes.byteLength, sha256hex);
    await done(tx);
  }

  async storedBytes(): Promise<number> {
    const tx = this.db.transaction(SIZES, 'readonly');
    const sizes = (await request(tx.objectStore(SIZES).getAll())) as number[];
    return sizes.reduce((a, b) => a + b, 0);
  }

  async count(): Promise<number> {
    return request(this.db.transaction(SIZES, 'readonly').objectStore(SIZES).count());
  }

  async clear(): Promise<void> {
    const tx = this.db.transaction([TENSORS, SIZES], 'readwrite');
    tx.objectStore(TENSORS).clear();
    tx.objectStore(SIZES).clear();
    await done(tx);
  }

  close(): void {
    this.db.close();
  }

  private async remove(sha256hex: string): Promise<void> {
    const tx = this.db.transaction([TENSORS, SIZES], 'readwrite');
    tx.objectStore(TENSORS).delete(sha256hex);
    tx.objectStore(SIZES).delete(sha256hex);
    await done(tx);
  }
}
