import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GgufValue } from '../model/gguf-reader.js';
import type { ModelConfig } from '../model/model-config.js';
import { ModelFileError } from '../model/model-errors.js';
import type { ModelFile, RopeLayout, TensorInfo, TensorName, TokenizerSource } from '../model/model-file.js';
import { dequantize } from '../model/tensor-dequant.js';
import { checkTensorShapes } from '../model/tensor-shape-check.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import { ShardCache } from './shard-cache.js';
import type { TensorStore } from './tensor-store.js';
import { WeightsClient } from './weights-client.js';
import { WeightsUnavailableError } from './weights-errors.js';
import { fromWireGguf, type TensorEntry, type WeightsManifest } from './weights-protocol.js';

export interface WeightsFetchStats {
  /** Tensors (and their stored bytes) fetched from peers by this process. */
  fetchedTensors: number;
  fetchedBytes: number;
  /** Tensors read from the local shard cache instead. */
  reusedTensors: number;
  reusedBytes: number;
}

export interface PeerModelFileOptions {
  host: EdgeHost;
  /** Peers that have the model file, best first; asked again whenever a peer fails. */
  sources: () => Promise<string[]>;
  /** Root for the shard cache and tokenizer files (`<dir>/tensors`, `<dir>/tokenizer-…`). */
  dir: string;
  log: NodeLogger;
  /** Where fetched tensors are kept (default: a ShardCache in `<dir>/tensors`; a browser node passes IndexedDB). */
  store?: TensorStore;
  /** Called after every tensor (fetched or reused). */
  onProgress?: (stats: WeightsFetchStats & { tensor: string }) => void;
}

/**
 * A ModelFile whose bytes live on a peer: the manifest (config, tokenizer, tensor list with hashes) comes from a
 * node that has the model, and readTensor fetches one tensor's stored bytes on demand, verifies its SHA-256 and
 * keeps it in a local shard cache. The pipeline reads only its own layers' tensors, so a node stores only those.
 */
export class PeerModelFile implements ModelFile {
  readonly format: 'gguf' | 'safetensors';
  readonly config: ModelConfig;
  readonly ropeLayout: RopeLayout;
  readonly tensors: ReadonlyMap<TensorName, TensorInfo>;
  readonly chatTemplate: string | null;
  private readonly entries: ReadonlyMap<TensorName, TensorEntry>;
  private readonly inflight = new Map<TensorName, Promise<Uint8Array>>();
  private readonly clients = new Map<string, Promise<WeightsClient>>();
  private readonly stats: WeightsFetchStats = { fetchedTensors: 0, fetchedBytes: 0, reusedTensors: 0, reusedBytes: 0 };
  private lastLog = 0;
  private settleTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    readonly path: string,
    manifest: WeightsManifest,
    readonly tokenizer: TokenizerSource,
    readonly cache: TensorStore,
    private readonly opts: PeerModelFileOptions,
    first: { peerId: string; client: WeightsClient },
  ) {
    this.format = manifest.format;
    this.config = manifest.config;
    this.ropeLayout = manifest.ropeLayout;
    this.chatTemplate = manifest.chatTemplate;
    this.entries = new Map(manifest.tensors.map((t) => [t.name, t]));
    this.tensors = new Map(
      manifest.tensors.map((t) => [t.name, { name: t.name, shape: t.shape, dtype: t.dtype, file: cache.pathOf(t.sha256), offset: 0, byteLength: t.byteLength }]),
    );
    this.clients.set(first.peerId, Promise.resolve(first.client));
  }

  /** Asks the first source that answers for the manifest and builds the model from it. */
  static async fromPeers(opts: PeerModelFileOptions): Promise<PeerModelFile> {
    const errors: string[] = [];
    for (const peerId of await opts.sources()) {
      let client: WeightsClient | null = null;
      try {
        client = await WeightsClient.connect(opts.host, peerId);
        const manifest = await client.manifest();
        const tokenizer = await writeTokenizer(manifest, opts.dir);
        // Named as the serving node names it, so the API id (the path's last segment) is the same on every node.
        const path = `peer:${peerId}/${manifest.modelId ?? manifest.config.name}`;
        const model = new PeerModelFile(path, manifest, tokenizer, opts.store ?? new ShardCache(join(opts.dir, 'tensors')), opts, { peerId, client });
        checkTensorShapes(model.config, model.tensors, path);
        opts.log.info(
          `weights: model ${manifest.config.name} (${manifest.tensors.length} tensors, ${(manifest.tensors.reduce((a, t) => a + t.byteLength, 0) / 1e6).toFixed(1)} MB) ` +
            `is on peer ${peerId.slice(-8)}; this node fetches only the layers the plan gives it`,
        );
        return model;
      } catch (err) {
        client?.close();
        errors.push(`${peerId.slice(-8)}: ${(err as Error).message}`);
      }
    }
    throw new WeightsUnavailableError(
      errors.length ? `no peer could send the model manifest (${errors.join('; ')})` : 'no peer in the cluster has the model (start one node with --model)',
    );
  }

  fetchStats(): WeightsFetchStats {
    return { ...this.stats };
  }

  async readTensor(name: TensorName): Promise<Float32Array> {
    const entry = this.entries.get(name);
    if (!entry) throw new ModelFileError(this.path, `has no tensor named ${name}`);
    const bytes = await this.readTensorBytes(name);
    const elements = entry.shape.reduce((a, b) => a * b, 1);
    if (entry.dtype === 'F32') {
      const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
      return new Float32Array(aligned.buffer, aligned.byteOffset, elements).slice();
    }
    return dequantize(entry.dtype, bytes, elements, { file: this.cache.pathOf(entry.sha256), tensor: name });
  }

  async readTensorBytes(name: TensorName, into?: Uint8Array): Promise<Uint8Array> {
    const entry = this.entries.get(name);
    if (!entry) throw new ModelFileError(this.path, `has no tensor named ${name}`);
    if (this.closed) throw new ModelFileError(this.path, `is closed; cannot read ${name}`);
    if (into && into.byteLength !== entry.byteLength) throw new RangeError(`${name} has ${entry.byteLength} bytes; the target holds ${into.byteLength}`);
    let p = this.inflight.get(name);
    if (!p) {
      p = this.storedBytes(entry).finally(() => {
        this.inflight.delete(name);
        this.scheduleSettledLog();
      });
      this.inflight.set(name, p);
    }
    const bytes = await p;
    if (!into) return bytes;
    into.set(bytes);
    return into;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    for (const c of this.clients.values()) (await c.catch(() => null))?.close();
    this.clients.clear();
  }

  /** From the shard cache if there, else from the first peer that delivers it intact (then cached). */
  private async storedBytes(entry: TensorEntry): Promise<Uint8Array> {
    const cached = await this.cache.read(entry.sha256, entry.byteLength);
    if (cached) {
      this.stats.reusedTensors++;
      this.stats.reusedBytes += entry.byteLength;
      this.progress(entry.name);
      return cached;
    }
    const errors: string[] = [];
    for (const peerId of [...this.clients.keys(), ...(await this.opts.sources())].filter((p, i, a) => a.indexOf(p) === i)) {
      try {
        const client = await this.client(peerId);
        const bytes = await client.tensor(entry);
        await this.cache.write(entry.sha256, bytes);
        this.stats.fetchedTensors++;
        this.stats.fetchedBytes += entry.byteLength;
        this.progress(entry.name);
        return bytes;
      } catch (err) {
        errors.push(`${peerId.slice(-8)}: ${(err as Error).message}`);
        const c = this.clients.get(peerId);
        this.clients.delete(peerId);
        void c?.then((x) => x.close()).catch(() => {});
        this.opts.log.warn(`weights: could not fetch ${entry.name} from ${peerId.slice(-8)}: ${(err as Error).message}`);
      }
    }
    throw new WeightsUnavailableError(`tensor ${entry.name} could not be fetched from any peer (${errors.join('; ') || 'no peer has the model'})`);
  }

  private client(peerId: string): Promise<WeightsClient> {
    let c = this.clients.get(peerId);
    if (!c) {
      c = WeightsClient.connect(this.opts.host, peerId);
      this.clients.set(peerId, c);
      c.catch(() => this.clients.delete(peerId));
    }
    return c.then((client) => {
      if (client.open) return client;
      this.clients.delete(peerId);
      return this.client(peerId);
    });
  }

  private progress(tensor: string): void {
    this.opts.onProgress?.({ ...this.stats, tensor });
    const now = Date.now();
    if (now - this.lastLog >= 1000) {
      this.lastLog = now;
      this.opts.log.info(`weights: ${this.describe()} (now ${tensor})`);
    }
  }

  private scheduleSettledLog(): void {
    if (this.inflight.size > 0 || this.closed) return;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = null;
      if (this.inflight.size === 0) this.opts.log.info(`weights: ${this.describe()}`);
    }, 200);
    this.settleTimer.unref();
  }

  private describe(): string {
    const s = this.stats;
    return `fetched ${s.fetchedTensors} tensors (${(s.fetchedBytes / 1e6).toFixed(2)} MB) from peers, reused ${s.reusedTensors} (${(s.reusedBytes / 1e6).toFixed(2)} MB) from the shard cache`;
  }
}

/** HF tokenizers are read from files: write the manifest's texts into the data dir (named by content). */
async function writeTokenizer(manifest: WeightsManifest, dir: string): Promise<TokenizerSource> {
  const t = manifest.tokenizer;
  if (t.kind === 'gguf') {
    return { kind: 'gguf', metadata: new Map<string, GgufValue>(t.metadata.map(([k, v]) => [k, fromWireGguf(v, k)])) };
  }
  await mkdir(dir, { recursive: true });
  const save = async (text: string, what: string): Promise<string> => {
    const path = join(dir, `${what}-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.json`);
    await writeFile(path, text);
    return path;
  };
  const path = await save(t.tokenizerJson, 'tokenizer');
  const configPath = t.tokenizerConfigJson === null ? null : await save(t.tokenizerConfigJson, 'tokenizer_config');
  return { kind: 'tokenizer-json', path, configPath };
}
