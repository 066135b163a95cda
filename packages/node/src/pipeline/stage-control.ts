import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RemoteRequestError, RequestChannel } from '../network/request-channel.js';
import type { ControlEnvelope, ControlReply, ControlRequest, StageServer } from './stage-server.js';
import { StageLostError } from './stage-errors.js';
import type { KvChunk } from './kv-chunk.js';
import type { CoordinatorLora, LoraReadReply, LoraReadRequest } from './lora-slices.js';
import { parseKvChunk, type KvAdoptReply, type KvAdoptRequest, type KvReadRequest } from './kv-move-control.js';

type ControlChannel = RequestChannel<ControlRequest, ControlReply, never>;

/** How long a stage may take to load its layers (a large model on a slow disk or link). */
const LOAD_TIMEOUT_MS = 300_000;
const DROP_TIMEOUT_MS = 30_000;
/** A live move's copy: past this, the request is replayed instead. */
const KV_TIMEOUT_MS = 30_000;

/**
 * The coordinator's hold on the stages of its plans: has a node load a layer range or drop what it held for this
 * coordinator — this node's own StageServer directly, the others over `/edge-node/control`, one long-lived channel
 * per node.
 */
export class StageControl {
  private readonly channels = new Map<string, Promise<ControlChannel>>();

  constructor(
    private readonly opts: {
      host: EdgeHost;
      /** This node's stage: its control requests are calls, not messages. */
      stage: StageServer;
      /** The model the loads and drops are for. */
      fingerprint: string;
      log: NodeLogger;
      /** The adapter this coordinator's stages apply: every load names it and the stage's slice. */
      lora?: CoordinatorLora;
    },
  ) {}

  /** Has a node load [start, end). A node that cannot take its stage is reported as lost (StageLostError). */
  async load(peerId: string, startLayer: number, endLayer: number): Promise<void> {
    const lora = this.opts.lora?.refFor({ startLayer, endLayer });
    const request: ControlRequest = { op: 'load', model: this.opts.fingerprint, startLayer, endLayer, ...(lora ? { lora } : {}) };
    if (peerId === this.opts.host.peerId) {
      await this.opts.stage.control(request, peerId);
      return;
    }
    try {
      await (await this.channel(peerId)).request(request, { timeoutMs: LOAD_TIMEOUT_MS });
    } catch (err) {
      // A node that cannot take its stage is as good as lost: the request re-plans without it.
      if (err instanceof RemoteRequestError) throw err;
      throw new StageLostError(peerId, `could not load layers [${startLayer}, ${endLayer}) (${(err as Error).message})`);
    }
  }

  /** Tells a node to free what it held for this coordinator (no reply awaited; a node gone has nothing to free). */
  drop(peerId: string, name: string): void {
    const request: ControlRequest = { op: 'drop', model: this.opts.fingerprint };
    if (peerId === this.opts.host.peerId) {
      void this.opts.stage.control(request, peerId);
      return;
    }
    void this.channel(peerId)
      .then((c) => c.request(request, { timeoutMs: DROP_TIMEOUT_MS }))
      .catch((err: Error) => this.opts.log.debug(`could not tell ${name} to drop its layers: ${err.message}`));
  }

  /** A piece of a request's KV from a node's stage (for a stage of the new route that pulls it), checked for form. */
  async readKv(peerId: string, req: KvReadRequest): Promise<KvChunk> {
    const reply = await this.ask(peerId, req);
    return parseKvChunk((reply as { chunk?: unknown }).chunk);
  }

  /** A piece of a coordinator's LoRA slice, for this node's stage (lora-slices.ts), checked for form. */
  async readLora(peerId: string, req: LoraReadRequest): Promise<LoraReadReply> {
    const reply = (await (await this.channel(peerId)).request(req, { timeoutMs: KV_TIMEOUT_MS })) as Partial<LoraReadReply>;
    if (typeof reply.total !== 'number' || !(reply.data instanceof Uint8Array)) throw new Error(`${peerId.slice(-8)} answered lora-read without its bytes`);
    return { ok: true, total: reply.total, data: reply.data };
  }

  /** Has a node take a moving request's KV for its stage of the new route (kv-move-control.ts); its copied bytes. */
  async adoptKv(peerId: string, req: KvAdoptRequest): Promise<number> {
    const reply = (await this.ask(peerId, req)) as Partial<KvAdoptReply>;
    if (reply.positions !== req.start + req.count || typeof reply.copiedBytes !== 'number') throw new Error(`${peerId.slice(-8)} answered kv-adopt without the positions asked for`);
    return reply.copiedBytes;
  }

  private async ask(peerId: string, req: KvReadRequest | KvAdoptRequest): Promise<unknown> {
    if (peerId === this.opts.host.peerId) return this.opts.stage.control(req, peerId);
    return (await this.channel(peerId)).request(req, { timeoutMs: KV_TIMEOUT_MS });
  }

  /** A node left: the next load opens a new channel. */
  forget(peerId: string): void {
    this.channels.delete(peerId);
  }

  async close(): Promise<void> {
    for (const c of this.channels.values()) (await c.catch(() => null))?.stream.abort(new Error('node stopping'));
  }

  private channel(peerId: string): Promise<ControlChannel> {
    let c = this.channels.get(peerId);
    if (!c) {
      c = this.opts.host.openMessageStream<ControlEnvelope, ControlEnvelope>(peerId, PROTOCOLS.control).then((stream) => {
        const channel = new RequestChannel<ControlRequest, ControlReply, never>(stream, { timeoutMs: LOAD_TIMEOUT_MS });
        stream.onClose(() => {
          if (this.channels.get(peerId) === c) this.channels.delete(peerId);
        });
        return channel;
      });
      this.channels.set(peerId, c);
      c.catch(() => this.channels.delete(peerId));
    }
    return c;
  }
}
