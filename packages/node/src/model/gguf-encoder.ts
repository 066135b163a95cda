/** A metadata value the encoder writes: the GGUF value types a small file (an adapter) needs. */
export type GgufEncodedValue = { type: 'string'; value: string } | { type: 'f32'; value: number } | { type: 'u32'; value: number };

/** One tensor to write: its GGML ne[] (innermost first), GGML type id and encoded bytes. */
export interface GgufEncodedTensor {
  name: string;
  ne: readonly number[];
  typeId: number;
  data: Uint8Array;
}

const GGUF_MAGIC = 0x46554747;
const GGUF_VERSION = 3;
const ALIGNMENT = 32;
const VALUE_TYPE = { u32: 4, f32: 6, string: 8 } as const;

const align = (n: number): number => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/**
 * A GGUF v3 file in memory: header, metadata, tensor index and the tensors' data, each aligned to 32 bytes (the
 * default llama.cpp reads when general.alignment is absent). Meant for small files such as LoRA adapters.
 */
export function encodeGguf(metadata: ReadonlyArray<readonly [string, GgufEncodedValue]>, tensors: readonly GgufEncodedTensor[]): Uint8Array {
  const text = new TextEncoder();
  const header: Uint8Array[] = [];
  const scalar = (bytes: number, write: (v: DataView) => void): void => {
    const b = new Uint8Array(bytes);
    write(new DataView(b.buffer));
    header.push(b);
  };
  const u32 = (v: number): void => scalar(4, (d) => d.setUint32(0, v, true));
  const u64 = (v: number): void => scalar(8, (d) => d.setBigUint64(0, BigInt(v), true));
  const str = (s: string): void => {
    const b = text.encode(s);
    u64(b.byteLength);
    header.push(b);
  };

  u32(GGUF_MAGIC);
  u32(GGUF_VERSION);
  u64(tensors.length);
  u64(metadata.length);
  for (const [key, v] of metadata) {
    str(key);
    u32(VALUE_TYPE[v.type]);
    if (v.type === 'string') str(v.value);
    else if (v.type === 'f32') scalar(4, (d) => d.setFloat32(0, v.value, true));
    else u32(v.value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.ne.length);
    for (const n of t.ne) u64(n);
    u32(t.typeId);
    u64(offset);
    offsets.push(offset);
    offset = align(offset + t.data.byteLength);
  }
  const headerBytes = header.reduce((s, b) => s + b.byteLength, 0);
  const dataStart = align(headerBytes);
  const out = new Uint8Array(dataStart + offset);
  let at = 0;
  for (const b of header) {
    out.set(b, at);
    at += b.byteLength;
  }
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}
