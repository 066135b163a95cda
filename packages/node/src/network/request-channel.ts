import type { MessageStream, StreamCloseInfo } from './message-stream.js';

/** A request that got no reply in time. */
export class RequestTimeoutError extends Error {
  override name = 'RequestTimeoutError';
  constructor(
    readonly remotePeer: string,
    readonly timeoutMs: number,
  ) {
    super(`no reply from ${remotePeer} within ${timeoutMs} ms`);
  }
}

/** The peer's request handler failed; `message` is its error text. */
export class RemoteRequestError extends Error {
  override name = 'RemoteRequestError';
  constructor(
    readonly remotePeer: string,
    readonly remoteName: string,
    remoteMessage: string,
  ) {
    super(`${remotePeer} answered with ${remoteName}: ${remoteMessage}`);
  }
}

/** The channel closed before the reply arrived. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError';
  constructor(readonly remotePeer: string, reason?: string) {
    super(`the request channel to ${remotePeer} closed${reason ? `: ${reason}` : ''}`);
  }
}

/** The peer sent something that is not a message of this channel's protocol: the stream is reset. */
export class ChannelProtocolError extends Error {
  override name = 'ChannelProtocolError';
}

/** Envelope on the wire. `id` correlates a reply (`res`/`err`) with its `req`; `msg` is one-way. */
export type ChannelEnvelope<Req, Res, Msg> =
  | { k: 'req'; id: number; body: Req }
  | { k: 'res'; id: number; body: Res }
  | { k: 'err'; id: number; name: string; message: string }
  | { k: 'msg'; body: Msg };

export type RequestHandler<Req, Res> = (request: Req) => Res | Promise<Res>;

export interface RequestChannelOptions<Req, Res, Msg> {
  /** Answers the peer's requests. Without one, requests are answered with an error. */
  onRequest?: RequestHandler<Req, Res>;
  /** Receives the peer's one-way messages. */
  onMessage?: (message: Msg) => void;
  /** Default timeout for request(). Default 10 s. */
  timeoutMs?: number;
  /** Checks a request body before onRequest sees it; throwing resets the stream (the peer is broken or hostile). */
  parseRequest?: (body: unknown) => Req;
  /** Called with the reason before the stream is reset for a malformed envelope or request (for the log). */
  onProtocolError?: (error: ChannelProtocolError) => void;
}

function isEnvelope(x: unknown): boolean {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || ArrayBuffer.isView(x)) return false;
  const e = x as Record<string, unknown>;
  const id = typeof e.id === 'number' && Number.isSafeInteger(e.id) && e.id >= 0;
  switch (e.k) {
    case 'req':
    case 'res':
      return id && 'body' in e;
    case 'err':
      return id && typeof e.name === 'string' && typeof e.message === 'string';
    case 'msg':
      return 'body' in e;
    default:
      return false;
  }
}

/**
 * Request/response (and one-way messages) in both directions over one MessageStream, for control traffic.
 * The channel owns the stream's reader: do not iterate the stream yourself.
 */
export class RequestChannel<Req = unknown, Res = unknown, Msg = never> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Res) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly timeoutMs: number;

  constructor(
    readonly stream: MessageStream<ChannelEnvelope<Req, Res, Msg>, ChannelEnvelope<Req, Res, Msg>>,
    private readonly options: RequestChannelOptions<Req, Res, Msg> = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    void this.readLoop();
    stream.onClose((info: StreamCloseInfo) => this.failAll(new ChannelClosedError(stream.remotePeer, info.error?.message)));
  }

  get remotePeer(): string {
    return this.stream.remotePeer;
  }

  /** Sends a request and resolves with the peer's reply. */
  request(body: Req, options: { timeoutMs?: number } = {}): Promise<Res> {
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return new Promise<Res>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestTimeoutError(this.stream.remotePeer, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.stream.send({ k: 'req', id, body }).catch((err: Error) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err);
      });
    });
  }

  /** Sends a one-way message. */
  notify(body: Msg): Promise<void> {
    return this.stream.send({ k: 'msg', body });
  }

  close(): Promise<void> {
    return this.stream.close();
  }

  private async readLoop(): Promise<void> {
    for await (const env of this.stream) {
      if (!isEnvelope(env)) {
        this.reset(new ChannelProtocolError('malformed envelope (expected {k: req|res|err|msg, id, …})'));
        return;
      }
      if (env.k === 'req') {
        let body: Req;
        try {
          body = this.options.parseRequest ? this.options.parseRequest(env.body) : env.body;
        } catch (err) {
          this.reset(new ChannelProtocolError(`malformed request: ${(err as Error).message}`));
          return;
        }
        void this.answer(env.id, body);
      }
      else if (env.k === 'res' || env.k === 'err') {
        const p = this.pending.get(env.id);
        if (!p) continue; // late reply after a timeout
        this.pending.delete(env.id);
        clearTimeout(p.timer);
        if (env.k === 'res') p.resolve(env.body);
        else p.reject(new RemoteRequestError(this.stream.remotePeer, String(env.name), String(env.message)));
      } else if (env.k === 'msg') this.options.onMessage?.(env.body);
    }
    this.failAll(new ChannelClosedError(this.stream.remotePeer));
  }

  private async answer(id: number, body: Req): Promise<void> {
    let reply: ChannelEnvelope<Req, Res, Msg>;
    try {
      if (!this.options.onRequest) throw new Error('this node does not answer requests on this channel');
      reply = { k: 'res', id, body: await this.options.onRequest(body) };
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      reply = { k: 'err', id, name: e.name, message: e.message };
    }
    await this.stream.send(reply).catch(() => {});
  }

  private reset(error: ChannelProtocolError): void {
    this.options.onProtocolError?.(error);
    this.stream.abort(error);
    this.failAll(new ChannelClosedError(this.stream.remotePeer, error.message));
  }

  private failAll(error: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(error);
      this.pending.delete(id);
    }
  }
}
