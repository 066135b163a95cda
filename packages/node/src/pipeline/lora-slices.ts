import { createHash } from 'node:crypto';
import type { ShardLora } from '../engine/lora-weights.js';
import type { LayerRange } from '../engine/layer-range.js';
import { readLoraAdapter, writeLoraAdapter } from '../model/lora-adapter-file.js';
import { parseLoraTarget, sliceLoraAdapter, type LoraAdapter } from '../model/lora-adapter.js';
import type { ModelFile } from '../model/model-file.js';

/**
 * A LoRA adapter across the cluster (`--lora` on the coordinator). Each stage applies only its layers' pairs — its
 * slice — which the coordinator writes as a LoRA GGUF of its own (the same format as the file) and names by the
 * SHA-256 of those bytes. The `load` control op tells a stage the adapter's id, the scale and its slice's digest; a
 * stage without those bytes pulls them from the coordinator with `lora-read` (pieces of at most 4 MiB), checks the
 * digest and reads the slice against its own copy of the base model. A stage that cannot get or check its slice fails
 * the load, so the coordinator never runs a request on base weights where the adapter should be: each request's
 * opening names the adapter id, and a stage serves it only from layers loaded with that id.
 */

/** What a `load` says about the adapter of the coordinator's plan. */
export interface StageLoraRef {
  /** The adapter in force and its scale: requests name it, stages key their layers by it. */
  id: string;
  scale: number;
  /** SHA-256 of the slice's bytes, or null when the adapter leaves these layers alone. */
  slice: string | null;
  /** Size of the slice's bytes (0 without one). */
  bytes: number;
}

export interface LoraReadRequest {
  op: 'lora-read';
  model: string;
  sha256: string;
  start: number;
  count: number;
}
export type LoraReadReply = { ok: true; total: number; data: Uint8Array };

/** A slice that cannot be had or used here: named in the stage's refusal to load. */
export class LoraSliceError extends Error {
  override name = 'LoraSliceError';
}

/** Bytes of one `lora-read` answer at most (well under the frame limit). */
export const LORA_PIECE_BYTES = 4 * 1024 * 1024;
const SHA256_RE = /^[0-9a-f]{64}$/;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The coordinator's adapter: its id, and the slice of every range a plan gives a stage, written once and kept to be read. */
export class CoordinatorLora {
  readonly id: string;
  private readonly slices = new Map<string, Uint8Array>();
  private readonly refs = new Map<string, StageLoraRef>();

  constructor(
    readonly adapter: LoraAdapter,
    readonly scale: number,
    /** The file it was read from, for status and logs. */
    readonly file: string,
    /** SHA-256 of the whole adapter file. */
    fileSha256: string,
    private readonly model: ModelFile,
  ) {
    this.id = `${fileSha256.slice(0, 16)}x${scale}`;
  }

  /** What a stage loading `range` is told (its slice written and offered on first use). */
  refFor(range: LayerRange): StageLoraRef {
    const key = `${range.startLayer}-${range.endLayer}`;
    let ref = this.refs.get(key);
    if (!ref) {
      const slice = sliceLoraAdapter(this.adapter, range.startLayer, range.endLayer);
      if (slice.tensors.size === 0) ref = { id: this.id, scale: this.scale, slice: null, bytes: 0 };
      else {
        const bytes = writeLoraAdapter(slice, this.model);
        const digest = sha256(bytes);
        this.slices.set(digest, bytes);
        ref = { id: this.id, scale: this.scale, slice: digest, bytes: bytes.byteLength };
      }
      this.refs.set(key, ref);
    }
    return ref;
  }

  /** The slice's bytes when this node wrote it (its own stage needs no copy over the wire). */
  sliceBytes(sha: string): Uint8Array | undefined {
    return this.slices.get(sha);
  }

  /** A piece of an offered slice, for a stage's `lora-read`. */
  read(req: LoraReadRequest): LoraReadReply {
    const bytes = this.slices.get(req.sha256);
    if (!bytes) throw new LoraSliceError(`this node offers no LoRA slice ${req.sha256.slice(0, 16)}…`);
    if (req.start > bytes.byteLength) throw new LoraSliceError(`lora-read starts at ${req.start}, past the slice's ${bytes.byteLength} bytes`);
    return { ok: true, total: bytes.byteLength, data: bytes.subarray(req.start, Math.min(bytes.byteLength, req.start + req.count)) };
  }
}

/**
 * The stage's end: the ShardLora of its slice — the coordinator's own bytes when it is this node, else pulled piece
 * by piece with `read` — checked against its digest, the base model and the stage's range.
 */
export async function fetchLoraSlice(
  ref: StageLoraRef,
  range: LayerRange,
  model: ModelFile,
  local: Uint8Array | undefined,
  read: (start: number, count: number) => Promise<LoraReadReply>,
): Promise<ShardLora | undefined> {
  if (ref.slice === null) return undefined;
  const bytes = local ?? (await pull(ref, read));
  const got = sha256(bytes);
  if (got !== ref.slice) throw new LoraSliceError(`the LoRA slice arrived with SHA-256 ${got.slice(0, 16)}…, not the ${ref.slice.slice(0, 16)}… the load named`);
  const adapter = await readLoraAdapter(bytes, model, `LoRA slice ${ref.slice.slice(0, 16)}… for layers [${range.startLayer}, ${range.endLayer})`);
  for (const name of adapter.tensors.keys()) {
    const layer = parseLoraTarget(name)?.layer ?? -1;
    if (layer < range.startLayer || layer >= range.endLayer) throw new LoraSliceError(`the LoRA slice adapts ${name}, outside this stage's layers [${range.startLayer}, ${range.endLayer})`);
  }
  return { adapter, scale: ref.scale };
}

async function pull(ref: StageLoraRef, read: (start: number, count: number) => Promise<LoraReadReply>): Promise<Uint8Array> {
  const out = new Uint8Array(ref.bytes);
  for (let at = 0; at < ref.bytes; ) {
    const piece = await read(at, Math.min(LORA_PIECE_BYTES, ref.bytes - at));
    if (piece.total !== ref.bytes || piece.data.byteLength === 0 || at + piece.data.byteLength > ref.bytes) {
      throw new LoraSliceError(`the coordinator sent a LoRA slice piece of ${piece.data.byteLength} bytes at ${at} of ${piece.total}, expected ${ref.bytes} bytes in all`);
    }
    out.set(piece.data, at);
    at += piece.data.byteLength;
  }
  return out;
}

function field(b: Record<string, unknown>, key: string, ok: (v: unknown) => boolean, what: string): unknown {
  if (!ok(b[key])) throw new LoraSliceError(`${key} must be ${what}`);
  return b[key];
}
const isSha = (v: unknown): boolean => typeof v === 'string' && SHA256_RE.test(v);
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A `load`'s adapter reference as a peer sent it. */
export function parseLoraRef(v: unknown): StageLoraRef {
  if (typeof v !== 'object' || v === null) throw new LoraSliceError('load.lora must be an object');
  const b = v as Record<string, unknown>;
  const slice = b.slice === null ? null : (field(b, 'slice', isSha, 'a SHA-256 or null') as string);
  return {
    id: field(b, 'id', (x) => typeof x === 'string' && x.length > 0 && x.length <= 64, 'a short string') as string,
    scale: field(b, 'scale', (x) => typeof x === 'number' && Number.isFinite(x), 'a finite number') as number,
    slice,
    bytes: field(b, 'bytes', (x) => isCount(x) && (slice === null ? x === 0 : (x as number) > 0 && (x as number) <= 2 ** 31), 'the slice size') as number,
  };
}

/** A `lora-read` as a peer sent it. */
export function parseLoraRead(b: Record<string, unknown>): LoraReadRequest {
  return {
    op: 'lora-read',
    model: field(b, 'model', (x) => typeof x === 'string' && x.length <= 512, 'a string') as string,
    sha256: field(b, 'sha256', isSha, 'a SHA-256') as string,
    start: field(b, 'start', isCount, 'a byte offset') as number,
    count: field(b, 'count', (x) => isCount(x) && (x as number) > 0 && (x as number) <= LORA_PIECE_BYTES, `1 to ${LORA_PIECE_BYTES} bytes`) as number,
  };
}
