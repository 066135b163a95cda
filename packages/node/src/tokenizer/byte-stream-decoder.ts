import type { StreamDecoder } from './tokenizer.js';

/**
 * Streams token bytes through a UTF-8 decoder in streaming mode, so a character whose bytes arrive in several
 * tokens is emitted once, whole. `stripLeadingSpace` drops the space SentencePiece put before the first word.
 */
export class ByteStreamDecoder implements StreamDecoder {
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private stripLeadingSpace: boolean;

  constructor(
    private readonly pieceBytes: (id: number) => Uint8Array,
    stripLeadingSpace: boolean,
  ) {
    this.stripLeadingSpace = stripLeadingSpace;
  }

  push(id: number): string {
    let bytes = this.pieceBytes(id);
    if (bytes.length === 0) return '';
    if (this.stripLeadingSpace) {
      this.stripLeadingSpace = false;
      if (bytes[0] === 0x20) bytes = bytes.subarray(1);
    }
    return this.utf8.decode(bytes, { stream: true });
  }

  flush(): string {
    return this.utf8.decode();
  }
}
