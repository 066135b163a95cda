/**
 * Where a node keeps the tensors it fetched from peers, addressed by the SHA-256 of their stored bytes. On Node it is
 * a folder (ShardCache); a browser node keeps them in IndexedDB. Either way a tensor that is there is not fetched again.
 */
export interface TensorStore {
  /** A name for the stored tensor, for messages (a file path, or a storage key). */
  pathOf(sha256: string): string;
  /** The stored bytes, if present and intact (a damaged entry is dropped, and so fetched again). */
  read(sha256: string, byteLength: number): Promise<Uint8Array | null>;
  write(sha256: string, bytes: Uint8Array): Promise<void>;
  /** Bytes of all tensors stored. */
  storedBytes(): Promise<number>;
}
