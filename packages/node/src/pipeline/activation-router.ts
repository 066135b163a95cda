import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { FrameValidationError, parseActivationFrame, type ActFrame, type ActivationFrame, type ErrorFrame, type FrameLimits, type ReleaseFrame, type TokenFrame } from './activation-frame.js';

/** Where the frames this node receives go: work for its stage, and answers for the requests it coordinates. */
export interface FrameSinks {
  /** `act` and `release` frames, for this node's stage (from: the node that sent it). */
  stage: (frame: ActFrame | ReleaseFrame, from: string) => void;
  /** `token` and `error` frames, for this node's coordinator. */
  coordinator: (frame: TokenFrame | ErrorFrame) => void;
}

/** Counters for /metrics and the fuzz tests. */
export interface RouterStats {
  framesIn: number;
  framesOut: number;
  bytesOut: number;
  rejectedFrames: number;
  resetStreams: number;
}

/**
 * Moves activation frames between nodes over long-lived libp2p streams: one outbound stream per peer, opened on
 * first use and reused for every later frame (a dial per token would cost ~100 ms). Frames addressed to this node
 * are delivered in-process. Every inbound frame is validated; a stream that carries an invalid frame is reset and
 * logged, and the node carries on. One router per node, shared by its stage and its coordinator: each gets its own
 * kinds of frame.
 */
export class ActivationRouter {
  readonly stats: RouterStats = { framesIn: 0, framesOut: 0, bytesOut: 0, rejectedFrames: 0, resetStreams: 0 };
  private readonly outbound = new Map<string, Promise<MessageStream<unknown, ActivationFrame>>>();
  private readonly inbound = new Set<MessageStream<unknown, unknown>>();
  private sinks: FrameSinks | null = null;

  constructor(
    private readonly host: EdgeHost,
    /** What an inbound frame may hold (frameLimits()). */
    readonly limits: FrameLimits,
    private readonly log: NodeLogger,
  ) {}

  get selfId(): string {
    return this.host.peerId;
  }

  /** Registers the protocol handler. Call before the host starts so identify advertises it. */
  async start(sinks: FrameSinks): Promise<void> {
    this.sinks = sinks;
    await this.host.handle(PROTOCOLS.activations, (stream, info) => this.readInbound(stream, info.remotePeer), { maxInboundStreams: 64 });
  }

  /** Sends a frame to a peer (or to this node). Rejects if the peer cannot be reached. */
  async send(to: string, frame: ActivationFrame): Promise<void> {
    if (to === this.host.peerId) {
      // In-process, but never re-entrant: the receiver runs after the sender's current work.
      setImmediate(() => this.deliver(frame, to));
      return;
    }
    const stream = await this.streamTo(to);
    this.stats.framesOut++;
    await stream.send(frame);
  }

  /** Drops the outbound stream to a peer (it left); the next send opens a new one. */
  forget(peerId: string): void {
    const s = this.outbound.get(peerId);
    this.outbound.delete(peerId);
    s?.then((stream) => stream.abort(new Error('peer left'))).catch(() => {});
  }

  async close(): Promise<void> {
    for (const s of this.outbound.values()) (await s.catch(() => null))?.abort(new Error('node stopping'));
    for (const s of this.inbound) s.abort(new Error('node stopping'));
    this.outbound.clear();
    this.inbound.clear();
  }

  private streamTo(peerId: string): Promise<MessageStream<unknown, ActivationFrame>> {
    let s = this.outbound.get(peerId);
    if (!s) {
      s = this.host.openMessageStream<unknown, ActivationFrame>(peerId, PROTOCOLS.activations);
      this.outbound.set(peerId, s);
      s.then(
        (stream) => {
          // Nothing is expected back on our outbound stream; drain it so the peer's close is seen.
          void (async () => {
            for await (const _ of stream) {
              /* ignore */
            }
          })();
          stream.onClose(() => {
            if (this.outbound.get(peerId) === s) this.outbound.delete(peerId);
          });
        },
        () => {
          if (this.outbound.get(peerId) === s) this.outbound.delete(peerId);
        },
      );
    }
    return s;
  }

  private async readInbound(stream: MessageStream<unknown, unknown>, from: string): Promise<void> {
    this.inbound.add(stream);
    try {
      for await (const raw of stream) {
        let frame: ActivationFrame;
        try {
          frame = parseActivationFrame(raw, this.limits);
        } catch (err) {
          this.stats.rejectedFrames++;
          this.stats.resetStreams++;
          const reason = err instanceof FrameValidationError ? err.message : String(err);
          this.log.warn(`reset activation stream from ${from.slice(-8)}: invalid frame (${reason})`);
          stream.abort(err instanceof Error ? err : new Error(reason));
          return;
        }
        this.stats.framesIn++;
        this.deliver(frame, from);
      }
      const info = await stream.closed;
      if (info.error && !info.local) this.log.warn(`activation stream from ${from.slice(-8)} closed: ${info.error.message}`);
      else if (info.error && info.local && !/stopping/.test(info.error.message)) {
        this.stats.resetStreams++;
        this.log.warn(`activation stream from ${from.slice(-8)} reset: ${info.error.message}`);
      }
    } finally {
      this.inbound.delete(stream);
    }
  }

  private deliver(frame: ActivationFrame, from: string): void {
    try {
      if (frame.t === 'act' || frame.t === 'release') this.sinks?.stage(frame, from);
      else this.sinks?.coordinator(frame);
    } catch (err) {
      this.log.error(`activation frame handler failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
}
