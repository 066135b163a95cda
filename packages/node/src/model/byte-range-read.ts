import type { FileHandle } from 'node:fs/promises';
import { TruncatedModelFileError } from './model-errors.js';

/** Node rejects single reads above 2 GiB - 1; a larger tensor (e.g. a 128k-vocab F32 head) is read in parts. */
const MAX_SINGLE_READ = 1 << 30;

/**
 * Reads exactly `length` bytes at `position` into `target` (or a fresh buffer). Normally one positioned read;
 * more only when the OS returns a short read or the range exceeds MAX_SINGLE_READ.
 */
export async function readByteRange(
  handle: FileHandle,
  file: string,
  position: number,
  length: number,
  target: Uint8Array = new Uint8Array(length),
): Promise<Uint8Array> {
  let done = 0;
  while (done < length) {
    const chunk = Math.min(length - done, MAX_SINGLE_READ);
    const { bytesRead } = await handle.read(target, done, chunk, position + done);
    if (bytesRead === 0) {
      throw new TruncatedModelFileError(
        file,
        `expected ${length} bytes at offset ${position} but the file ends at ${position + done}`,
      );
    }
    done += bytesRead;
  }
  return target;
}
