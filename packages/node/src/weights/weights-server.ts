import { createHash } from 'node:crypto';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { readByteRange } from '../model/byte-range-read.js';
import type { ModelFile, TensorInfo } from '../model/model-file.js';
import { WeightsProtocolError } from './weights-errors.js';
import { parseWeightsRequest, toWireGguf, WEIGHT_CHUNK_BYTES, type TensorEntry, type WeightsManifest, type WeightsReply, type WireTokenizer } from './weights-protocol.js';

/**
 * Answers `/edge-node/weights` requests from this node's model file: the manifest, and any tensor's stored bytes.
 * Each tensor's SHA-256 is computed once (when the manifest is first asked for) and kept.
 */
export class WeightsServer {
  private manifest: Promise<WeightsManifest> | null = null;
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private closed = false;

  constructor(
    readonly model: ModelFile,
    private readonly log: NodeLogger,
    private readonly chunkBytes = WEIGHT_CHUNK_BYTES,
    /** The id this node's API serves the model as; peers serving it from here use the same. */
    private readonly modelId?: string,
  ) {}

  /** Registers the protocol handler on `host` (call before or after the host starts). */
  async register(host: EdgeHost): Promise<void> {
    await host.handle(PROTOCOLS.weights, (stream, info) => this.serve(stream as MessageStream<unknown, WeightsReply>, info.remotePeer), { maxInboundStreams: 32 });
  }

  getManifest(): Promise<WeightsManifest> {
    if (!this.manifest) {
      this.manifest = this.buildManifest();
      this.manifest.catch(() => (this.manifest = null));
    }
    return this.manifest;
  }

  /** Stored bytes of one tensor, exactly as in the model file (quantised types stay quantised). */
  async readStored(info: TensorInfo): Promise<Uint8Array> {
    let h = this.handles.get(info.file);
    if (!h) {
      h = open(info.file, 'r');
      this.handles.set(info.file, h);
      h.catch(() => this.handles.delete(info.file));
    }
    return readByteRange(await h, info.file, info.offset, info.byteLength);
  }

  async close(): Promise<void> {
    this.closed = true;
    const hs = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(hs.map((h) => h.then((fh) => fh.close()).catch(() => {})));
  }

  private async serve(stream: MessageStream<unknown, WeightsReply>, from: string): Promise<void> {
    for await (const raw of stream) {
      let req;
      try {
        req = parseWeightsRequest(raw);
      } catch (err) {
        this.log.warn(`weights: resetting the stream of ${from.slice(-8)}: ${(err as Error).message}`);
        stream.abort(err as Error);
        return;
      }
      if (this.closed) {
        stream.abort(new WeightsProtocolError('node stopping'));
        return;
      }
      if (req.t === 'manifest') {
        await stream.send({ t: 'manifest', manifest: await this.getManifest() });
        continue;
      }
      const manifest = await this.getManifest();
      const entry = manifest.tensors.find((t) => t.name === req.name);
      const info = this.model.tensors.get(req.name);
      if (!entry || !info) {
        await stream.send({ t: 'error', message: `this node's model has no tensor ${req.name}` });
        continue;
      }
      await this.sendTensor(stream, entry, info);
    }
  }

  private async sendTensor(stream: MessageStream<unknown, WeightsReply>, entry: TensorEntry, info: TensorInfo): Promise<void> {
    const bytes = await this.readStored(info);
    await stream.send({ t: 'begin', name: entry.name, byteLength: entry.byteLength, sha256: entry.sha256 });
    for (let off = 0; off < bytes.byteLength; off += this.chunkBytes) {
      await stream.send({ t: 'chunk', data: bytes.subarray(off, Math.min(bytes.byteLength, off + this.chunkBytes)) });
    }
    await stream.send({ t: 'end' });
  }

  private async buildManifest(): Promise<WeightsManifest> {
    const t0 = performance.now();
    const m = this.model;
    const tensors: TensorEntry[] = [];
    let bytes = 0;
    for (const info of m.tensors.values()) {
      const data = await this.readStored(info);
      tensors.push({ name: info.name, shape: info.shape, dtype: info.dtype, byteLength: info.byteLength, sha256: createHash('sha256').update(data).digest('hex') });
      bytes += info.byteLength;
    }
    let tokenizer: WireTokenizer;
    if (m.tokenizer.kind === 'gguf') {
      const keep = [...m.tokenizer.metadata].filter(([k]) => k.startsWith('tokenizer.') || k.startsWith('general.'));
      tokenizer = { kind: 'gguf', metadata: keep.map(([k, v]) => [k, toWireGguf(v as Parameters<typeof toWireGguf>[0])]) };
    } else {
      tokenizer = {
        kind: 'tokenizer-json',
        tokenizerJson: await readFile(m.tokenizer.path, 'utf8'),
        tokenizerConfigJson: m.tokenizer.configPath ? await readFile(m.tokenizer.configPath, 'utf8') : null,
      };
    }
    this.log.info(`weights: serving ${tensors.length} tensors (${(bytes / 1e6).toFixed(1)} MB) to peers; hashed in ${(performance.now() - t0).toFixed(0)} ms`);
    return { version: 1, ...(this.modelId !== undefined ? { modelId: this.modelId } : {}), format: m.format, config: m.config, ropeLayout: m.ropeLayout, chatTemplate: m.chatTemplate, tokenizer, tensors };
  }
}

/** Starts answering weights requests for `model` on `host`. */
export async function serveWeights(host: EdgeHost, model: ModelFile, log: NodeLogger, modelId?: string): Promise<WeightsServer> {
  const server = new WeightsServer(model, log, WEIGHT_CHUNK_BYTES, modelId);
  await server.register(host);
  return server;
}
