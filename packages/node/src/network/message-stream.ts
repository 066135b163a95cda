import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { FrameCodec, FrameDecoder, FrameDecodeError, FrameTooLargeError } from './frame-codec.js';

/** Sending on a stream that is closed (locally, by the peer, or because the connection went away). */
export class StreamClosedError extends Error {
  override name = 'StreamClosedError';
  constructor(
    readonly protocol: string,
    readonly remotePeer: string,
    reason?: string,
  ) {
    super(`the ${protocol} stream to ${remotePeer} is closed${reason ? `: ${reason}` : ''}`);
  }
}

/** How a MessageStream ended. `error` is set for resets, aborts and undecodable frames. */
export interface StreamCloseInfo {
  /** True when this side closed or aborted it. */
  local: boolean;
  error?: Error;
}

export interface MessageStreamOptions {
  /** Shared codec (sets the maximum frame size). Default: a new FrameCodec with the default limit. */
  codec?: FrameCodec;
  /** Peer id string of the other end, for errors and logs. */
  remotePeer: string;
  /** Decoded messages waiting to be read before the raw stream is paused (flow control). Default 256. */
  highWaterMark?: number;
  /** Close our writable end once the peer closes theirs (long-lived streams end together). Default true. */
  closeWhenRemoteEnds?: boolean;
  /** close() gives the peer this long to finish before aborting. Default 2000 ms. */
  closeTimeoutMs?: number;
}

type Waiter<T> = { resolve: (r: IteratorResult<T>) => void };

/**
 * A long-lived, bidirectional stream of msgpack messages over one libp2p stream.
 *
 * - `send(msg)` encodes one frame and resolves once the frame is handed to the muxer; it waits (in order) while
 *   the muxer signals backpressure, so a fast sender cannot grow buffers without bound.
 * - `for await (const msg of stream)` reads decoded messages (one reader at a time); iteration ends when the
 *   stream closes for any reason, and `closed` says why.
 * - Undecodable or oversized frames abort the stream with FrameDecodeError / FrameTooLargeError in `closed`.
 */
export class MessageStream<In = unknown, Out = In> implements AsyncIterable<In> {
  readonly remotePeer: string;
  readonly protocol: string;
  /** Resolves (never rejects) once the stream is closed in both directions or aborted. */
  readonly closed: Promise<StreamCloseInfo>;

  private readonly codec: FrameCodec;
  private readonly decoder: FrameDecoder;
  private readonly queue: In[] = [];
  private queueHead = 0;
  private readonly waiters: Waiter<In>[] = [];
  private readonly highWaterMark: number;
  private readonly closeTimeoutMs: number;
  private paused = false;
  private ended = false;
  private closeInfo: StreamCloseInfo | null = null;
  private resolveClosed!: (info: StreamCloseInfo) => void;
  private sendTail: Promise<void> | null = null;
  private readonly closeCallbacks: ((info: StreamCloseInfo) => void)[] = [];

  constructor(
    readonly raw: Stream,
    options: MessageStreamOptions,
  ) {
    this.remotePeer = options.remotePeer;
    this.protocol = raw.protocol;
    this.codec = options.codec ?? new FrameCodec();
    this.decoder = new FrameDecoder(this.codec);
    this.highWaterMark = options.highWaterMark ?? 256;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    // The muxer must be able to buffer at least one maximal frame while we are paused.
    const needed = this.codec.maxFrameBytes + 64 * 1024;
    if (raw.maxReadBufferLength < needed) raw.maxReadBufferLength = needed;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));

    raw.addEventListener('message', (evt: StreamMessageEvent) => this.onData(evt.data));
    // 'end' fires once everything the peer sent has been delivered as 'message' events.
    raw.addEventListener('end', () => {
      // A peer that stops in the middle of a frame sent a truncated frame: that is a broken stream, not a clean end.
      const partial = this.decoder.pendingBytes;
      if (partial > 0) this.abort(new FrameDecodeError(`the stream ended inside a frame (${partial} bytes of it received)`));
      else this.endReading();
    });
    raw.addEventListener('remoteCloseWrite', () => {
      if (options.closeWhenRemoteEnds !== false && raw.writeStatus === 'writable') {
        raw.close().catch(() => {});
      }
    });
    raw.addEventListener('close', (evt: StreamCloseEvent) => {
      this.finish({ local: evt.local ?? false, ...(evt.error ? { error: evt.error } : {}) });
    });
    if (raw.status !== 'open') this.finish({ local: false, error: new StreamClosedError(this.protocol, this.remotePeer) });
  }

  /** True until the stream starts closing in either direction for writing. */
  get writable(): boolean {
    return this.closeInfo === null && this.raw.writeStatus === 'writable' && this.raw.remoteReadStatus !== 'closed';
  }

  /** Number of decoded messages waiting to be read. */
  get bufferedMessages(): number {
    return this.queue.length - this.queueHead;
  }

  /** Registers a callback for when the stream closes (called at once if it already has). */
  onClose(callback: (info: StreamCloseInfo) => void): void {
    if (this.closeInfo) callback(this.closeInfo);
    else this.closeCallbacks.push(callback);
  }

  /** Sends one message. Resolves when it is queued in the muxer; rejects with StreamClosedError or FrameTooLargeError. */
  send(message: Out): Promise<void> {
    let frame: Uint8Array;
    try {
      frame = this.codec.encode(message as unknown);
    } catch (err) {
      return Promise.reject(err);
    }
    // Fast path: nothing queued ahead of us and the muxer accepts data.
    if (this.sendTail === null && !this.raw.writableNeedsDrain) {
      try {
        this.write(frame);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const previous = this.sendTail ?? Promise.resolve();
    const next = previous
      .catch(() => {})
      .then(async () => {
        if (this.raw.writableNeedsDrain) {
          try {
            await this.raw.onDrain();
          } catch (err) {
            throw new StreamClosedError(this.protocol, this.remotePeer, (err as Error).message);
          }
        }
        this.write(frame);
      });
    this.sendTail = next;
    const clear = (): void => {
      if (this.sendTail === next) this.sendTail = null;
    };
    next.then(clear, clear);
    return next;
  }

  /** Reads the next message; undefined once the stream has ended. */
  async next(): Promise<In | undefined> {
    const r = await this.pull();
    return r.done ? undefined : r.value;
  }

  [Symbol.asyncIterator](): AsyncIterator<In> {
    return {
      next: () => this.pull(),
      return: async () => ({ done: true, value: undefined }),
    };
  }

  /** Closes gracefully: flushes queued frames, half-closes, and aborts if the peer has not closed in time. */
  async close(): Promise<void> {
    if (this.closeInfo) return;
    if (this.sendTail) await this.sendTail.catch(() => {});
    const timer = setTimeout(() => this.abort(new StreamClosedError(this.protocol, this.remotePeer, 'close timed out')), this.closeTimeoutMs);
    try {
      if (this.raw.writeStatus === 'writable') await this.raw.close({ signal: AbortSignal.timeout(this.closeTimeoutMs) });
    } catch {
      // The peer went away while we were closing: abort below finishes the stream.
    }
    if (!this.closeInfo && this.raw.readStatus === 'closed') this.finish({ local: true });
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, this.closeTimeoutMs))]);
    clearTimeout(timer);
    if (!this.closeInfo) this.abort(new StreamClosedError(this.protocol, this.remotePeer, 'close timed out'));
  }

  /** Closes at once, discarding unsent and unread data. */
  abort(error: Error): void {
    if (this.closeInfo) return;
    try {
      this.raw.abort(error);
    } catch {
      // already closed underneath
    }
    this.finish({ local: true, error });
  }

  private write(frame: Uint8Array): void {
    if (this.closeInfo || this.raw.writeStatus !== 'writable') {
      throw new StreamClosedError(this.protocol, this.remotePeer, this.closeInfo?.error?.message);
    }
    try {
      this.raw.send(frame);
    } catch (err) {
      throw new StreamClosedError(this.protocol, this.remotePeer, (err as Error).message);
    }
  }

  private onData(data: Uint8Array | Iterable<Uint8Array>): void {
    if (this.ended) return;
    const decoded: unknown[] = [];
    try {
      if (data instanceof Uint8Array) this.decoder.push(data, decoded);
      else for (const chunk of data) this.decoder.push(chunk, decoded);
    } catch (err) {
      for (const m of decoded) this.deliver(m as In);
      const e = err instanceof FrameTooLargeError || err instanceof FrameDecodeError ? err : new FrameDecodeError(String(err));
      this.abort(e);
      return;
    }
    for (const m of decoded) this.deliver(m as In);
  }

  private deliver(message: In): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ done: false, value: message });
      return;
    }
    this.queue.push(message);
    if (!this.paused && this.bufferedMessages >= this.highWaterMark) {
      this.paused = true;
      this.raw.pause();
    }
  }

  private pull(): Promise<IteratorResult<In>> {
    if (this.queueHead < this.queue.length) {
      const value = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as In;
      if (this.queueHead === this.queue.length) {
        this.queue.length = 0;
        this.queueHead = 0;
      }
      if (this.paused && this.bufferedMessages < this.highWaterMark / 2) {
        this.paused = false;
        this.raw.resume();
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => this.waiters.push({ resolve }));
  }

  private endReading(): void {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.resolve({ done: true, value: undefined });
  }

  private finish(info: StreamCloseInfo): void {
    if (this.closeInfo) return;
    this.closeInfo = info;
    this.endReading();
    this.resolveClosed(info);
    for (const cb of this.closeCallbacks.splice(0)) {
      try {
        cb(info);
      } catch {
        // a failing observer must not break the others
      }
    }
  }
}
