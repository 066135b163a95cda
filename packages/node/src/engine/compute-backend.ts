import type { ModelFile } from '../model/model-file.js';
import type { ForwardShard } from './forward-shard.js';
import type { KvCacheType } from './kv-cache.js';
import type { LayerRange } from './layer-range.js';
import type { ShardLora } from './lora-weights.js';

/**
 * What computes a node's layers: our WebAssembly kernels (the default: weights stay quantised), or tfjs on its
 * native (tfjs-node) or WebAssembly backend (weights dequantised to F32).
 */
export type ComputeBackendName = 'kernels' | 'tfjs-node' | 'tfjs-wasm';
export const COMPUTE_BACKEND_NAMES: readonly ComputeBackendName[] = ['kernels', 'tfjs-node', 'tfjs-wasm'];

/** A weight matrix [rows, cols] set up for timing (see ProductProbe). */
export interface ProbeMatrix {
  /** One product of the matrix with the first `n` activation rows (n ≤ the rows it was set up for). */
  run(n: number): void;
  release(): Promise<void>;
}

/** Sets up products to time, on the backend that will compute (the device profile measures what will run). */
export interface ProductProbe {
  /** Bytes of weights one product of a [rows, cols] matrix reads. */
  weightBytes(rows: number, cols: number): number;
  matrix(rows: number, cols: number, activationRows: number): Promise<ProbeMatrix>;
}

/**
 * The seam under the forward pass: something that turns a model's layer range into a ForwardShard. The engine and
 * the pipeline stages only see ForwardShard; which implementation computes it is chosen once per process
 * (`--backend`) and handed to them as a ComputeBackend.
 */
export interface ComputeBackend {
  readonly name: ComputeBackendName;
  /** The instruction set or library it runs ("simd128", "native"), for the profile and logs. */
  readonly isa: string;
  /** Threads that compute. */
  readonly threads: number;
  /** One line for logs: what computes, on what, and why. */
  readonly summary: string;
  /** How its KV caches store keys and values. */
  readonly kvCache: KvCacheType;
  /**
   * Throws a ModelFileError when this backend cannot compute the model's weights, a KvCacheTypeError when its cache
   * type cannot hold the model's heads (checked before anything is read).
   */
  checkModel(model: ModelFile): void;
  /**
   * Layers `range` of the model, reading only their tensors (plus embeddings on the first, head on the last); with
   * `lora`, the adapter's pairs of those layers are applied to their projections.
   */
  loadShard(model: ModelFile, range: LayerRange, lora?: ShardLora): Promise<ForwardShard>;
  /** Products to time for the device profile; `weightType` is the storage type most of the model's weights have. */
  probe(weightType?: string): ProductProbe;
  /** Stops what it started (threads); shards it made cannot be used afterwards. */
  close(): Promise<void>;
}
