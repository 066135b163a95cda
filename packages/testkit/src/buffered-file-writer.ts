import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

/**
 * Sequential writes to a file through one reusable buffer, so multi-gigabyte models stream to disk
 * with bounded memory and few syscalls.
 */
export class BufferedFileWriter {
  private readonly buffer: Uint8Array;
  private used = 0;
  private written = 0;

  private constructor(
    private readonly handle: FileHandle,
    bufferBytes: number,
  ) {
    this.buffer = new Uint8Array(bufferBytes);
  }

  static async create(path: string, bufferBytes = 8 << 20): Promise<BufferedFileWriter> {
    return new BufferedFileWriter(await open(path, 'w'), bufferBytes);
  }

  /** Bytes handed to write() so far (the file offset of the next byte). */
  get position(): number {
    return this.written + this.used;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let from = 0;
    while (from < bytes.length) {
      const n = Math.min(bytes.length - from, this.buffer.length - this.used);
      this.buffer.set(bytes.subarray(from, from + n), this.used);
      this.used += n;
      from += n;
      if (this.used === this.buffer.length) await this.flush();
    }
  }

  async writeZeros(count: number): Promise<void> {
    if (count > 0) await this.write(new Uint8Array(count));
  }

  async flush(): Promise<void> {
    let off = 0;
    while (off < this.used) {
      const { bytesWritten } = await this.handle.write(this.buffer, off, this.used - off);
      off += bytesWritten;
    }
    this.written += this.used;
    this.used = 0;
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.handle.close();
    }
  }

  /** Closes without flushing, for error paths (the caller removes the partial file). */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
