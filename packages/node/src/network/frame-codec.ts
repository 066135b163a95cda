import { Packr, RESERVE_START_SPACE } from 'msgpackr';

/**
 * Wire format of every edge-node stream: frames of `[u32 big-endian body length][msgpack body]`.
 * msgpack with `moreTypes` carries typed arrays (Float32Array activations) natively, and `useRecords: false`
 * keeps each frame self-contained (no shared structure state between sender and receiver).
 */
export const FRAME_HEADER_BYTES = 4;
/** Large enough for a prefill activation of a mid-size model (e.g. 2048 tokens × 4096 × fp32 = 32 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** The header is a u32, so no frame can be longer than this. */
const ABSOLUTE_MAX_FRAME_BYTES = 0xffff_ffff;

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError';
  constructor(
    readonly frameBytes: number,
    readonly maxFrameBytes: number,
  ) {
    super(
      `frame of ${frameBytes} bytes exceeds the maximum of ${maxFrameBytes} bytes ` +
        `(raise maxFrameBytes on both nodes, or send the payload in smaller pieces)`,
    );
  }
}

export class FrameDecodeError extends Error {
  override name = 'FrameDecodeError';
  constructor(reason: string) {
    super(`cannot decode frame: ${reason} (the peer sent bytes that are not an edge-node message)`);
  }
}

export interface FrameCodecOptions {
  /** Largest accepted body, in bytes. Default DEFAULT_MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
}

/** Encodes messages to frames and decodes frame bodies. Stateless apart from msgpackr's scratch buffer. */
export class FrameCodec<T = unknown> {
  readonly maxFrameBytes: number;
  private readonly packr = new Packr({ moreTypes: true, useRecords: false });

  constructor(options: FrameCodecOptions = {}) {
    const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < 1 || max > ABSOLUTE_MAX_FRAME_BYTES) {
      throw new RangeError(`maxFrameBytes must be an integer between 1 and ${ABSOLUTE_MAX_FRAME_BYTES}, got ${max}`);
    }
    this.maxFrameBytes = max;
  }

  /** A complete frame (header + body). msgpackr reserves the header space, so the body is never copied. */
  encode(message: T): Uint8Array {
    const frame: Uint8Array = this.packr.pack(message, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
    const bodyBytes = frame.byteLength - FRAME_HEADER_BYTES;
    if (bodyBytes > this.maxFrameBytes) throw new FrameTooLargeError(bodyBytes, this.maxFrameBytes);
    new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_BYTES).setUint32(0, bodyBytes);
    return frame;
  }

  /** Decodes one frame body. Throws only FrameDecodeError. Typed arrays in the result are copies (aligned). */
  decodeBody(body: Uint8Array): T {
    if (body.byteLength === 0) throw new FrameDecodeError('empty body');
    try {
      return this.packr.unpack(body) as T;
    } catch (err) {
      throw new FrameDecodeError(err instanceof Error ? err.message : String(err));
    }
  }

  /** Decodes a single complete frame (header + body), e.g. from a datagram or a test. */
  decodeFrame(frame: Uint8Array): T {
    const messages = new FrameDecoder<T>(this).push(frame);
    if (messages.length !== 1) throw new FrameDecodeError(`expected one complete frame, found ${messages.length}`);
    return messages[0];
  }
}

/**
 * Incremental decoder for a byte stream of frames. A body contained in one chunk is decoded in place; a body
 * split across chunks is kept as the chunks received and joined once, when complete. Nothing is allocated from the
 * header alone, so a peer that announces a large frame and sends little holds only what it sent. Throws only
 * FrameTooLargeError (checked from the header, before buffering) and FrameDecodeError; after either the stream
 * must be dropped.
 */
export class FrameDecoder<T = unknown> {
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  /** Announced length of the body being assembled, or -1 between frames. */
  private bodyLength = -1;
  private parts: Uint8Array[] = [];
  private bodyFill = 0;

  constructor(private readonly codec: FrameCodec<T>) {}

  /** Bytes of an incomplete frame held so far. */
  get pendingBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  push(chunk: Uint8Array, out: T[] = []): T[] {
    let off = 0;
    const end = chunk.byteLength;
    while (off < end) {
      if (this.bodyLength < 0) {
        let length: number;
        if (this.headerFill === 0 && end - off >= FRAME_HEADER_BYTES) {
          length = ((chunk[off] << 24) | (chunk[off + 1] << 16) | (chunk[off + 2] << 8) | chunk[off + 3]) >>> 0;
          off += FRAME_HEADER_BYTES;
        } else {
          const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, end - off);
          this.header.set(chunk.subarray(off, off + take), this.headerFill);
          this.headerFill += take;
          off += take;
          if (this.headerFill < FRAME_HEADER_BYTES) break;
          const h = this.header;
          length = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
          this.headerFill = 0;
        }
        if (length > this.codec.maxFrameBytes) throw new FrameTooLargeError(length, this.codec.maxFrameBytes);
        if (length === 0) throw new FrameDecodeError('empty body');
        if (end - off >= length) {
          out.push(this.codec.decodeBody(chunk.subarray(off, off + length)));
          off += length;
          continue;
        }
        this.bodyLength = length;
        this.bodyFill = 0;
      }
      const take = Math.min(this.bodyLength - this.bodyFill, end - off);
      // A copy: the muxer may reuse the chunk's memory after this call.
      this.parts.push(chunk.slice(off, off + take));
      this.bodyFill += take;
      off += take;
      if (this.bodyFill === this.bodyLength) {
        const body = new Uint8Array(this.bodyLength);
        let at = 0;
        for (const p of this.parts) {
          body.set(p, at);
          at += p.byteLength;
        }
        this.parts = [];
        this.bodyLength = -1;
        this.bodyFill = 0;
        out.push(this.codec.decodeBody(body));
      }
    }
    return out;
  }
}
