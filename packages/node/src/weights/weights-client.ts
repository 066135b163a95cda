import { createHash } from 'node:crypto';
import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { WeightsProtocolError } from './weights-errors.js';
import { parseWeightsManifest, type TensorEntry, type WeightsManifest, type WeightsReply, type WeightsRequest } from './weights-protocol.js';

/** No message from the peer for this long fails the request. */
const REPLY_TIMEOUT_MS = 60_000;

/**
 * The requesting end of `/edge-node/weights` to one peer: one long-lived stream, requests answered in order.
 * Every reply is checked (names, sizes, chunk total, SHA-256); a peer that breaks the protocol gets its stream reset.
 */
export class WeightsClient {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly peerId: string,
    private readonly stream: MessageStream<unknown, WeightsRequest>,
  ) {}

  static async connect(host: EdgeHost, peerId: string): Promise<WeightsClient> {
    return new WeightsClient(peerId, await host.openMessageStream<unknown, WeightsRequest>(peerId, PROTOCOLS.weights));
  }

  get open(): boolean {
    return this.stream.writable;
  }

  manifest(): Promise<WeightsManifest> {
    return this.serial(async () => {
      await this.stream.send({ t: 'manifest' });
      const reply = await this.reply();
      if (reply.t !== 'manifest') this.fail(`expected a manifest, got "${reply.t}"`);
      try {
        return parseWeightsManifest(reply.manifest);
      } catch (err) {
        this.fail((err as Error).message);
      }
    });
  }

  /** The tensor's stored bytes, verified against the manifest entry. */
  tensor(entry: TensorEntry, onBytes?: (n: number) => void): Promise<Uint8Array> {
    return this.serial(async () => {
      await this.stream.send({ t: 'tensor', name: entry.name });
      const begin = await this.reply();
      if (begin.t === 'error') throw new WeightsProtocolError(`peer ${this.peerId.slice(-8)} cannot send ${entry.name}: ${begin.message}`);
      if (begin.t !== 'begin' || begin.name !== entry.name || begin.byteLength !== entry.byteLength || begin.sha256 !== entry.sha256) {
        this.fail(`unexpected answer to the request for ${entry.name}`);
      }
      const out = new Uint8Array(entry.byteLength);
      let got = 0;
      for (;;) {
        const m = await this.reply();
        if (m.t === 'end') break;
        if (m.t !== 'chunk' || !(m.data instanceof Uint8Array) || got + m.data.byteLength > out.byteLength) this.fail(`malformed data for ${entry.name}`);
        out.set(m.data, got);
        got += m.data.byteLength;
        onBytes?.(m.data.byteLength);
      }
      if (got !== entry.byteLength) this.fail(`${entry.name}: got ${got} of ${entry.byteLength} bytes`);
      const sha = createHash('sha256').update(out).digest('hex');
      if (sha !== entry.sha256) this.fail(`${entry.name}: SHA-256 ${sha} does not match the manifest's ${entry.sha256}`);
      return out;
    });
  }

  close(): void {
    this.stream.abort(new Error('weights client closed'));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async reply(): Promise<WeightsReply> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WeightsProtocolError(`peer ${this.peerId.slice(-8)} sent nothing for ${REPLY_TIMEOUT_MS / 1000} s`)), REPLY_TIMEOUT_MS);
    });
    try {
      const m = await Promise.race([this.stream.next(), timeout]);
      if (m === undefined) throw new WeightsProtocolError(`the weights stream to ${this.peerId.slice(-8)} closed`);
      if (typeof m !== 'object' || m === null || typeof (m as { t?: unknown }).t !== 'string') this.fail('malformed message');
      return m as WeightsReply;
    } catch (err) {
      if (err instanceof WeightsProtocolError && !this.stream.writable) throw err;
      if (err instanceof WeightsProtocolError) {
        this.stream.abort(err);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resets the stream and throws: the peer sent something it should not have. */
  private fail(reason: string): never {
    const err = new WeightsProtocolError(`peer ${this.peerId.slice(-8)}: ${reason}`);
    this.stream.abort(err);
    throw err;
  }
}
