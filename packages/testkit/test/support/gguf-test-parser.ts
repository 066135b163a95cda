/** An independent, minimal GGUF v3 parser (the project's reader is someone else's code under test). */
export function parseGguf(buf: Uint8Array) {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  const u32 = () => ((o += 4), v.getUint32(o - 4, true));
  const u64 = () => ((o += 8), Number(v.getBigUint64(o - 8, true)));
  const str = () => {
    const n = u64();
    o += n;
    return new TextDecoder().decode(buf.subarray(o - n, o));
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case 0: return v.getUint8(o++);
      case 1: return v.getInt8(o++);
      case 4: return u32();
      case 5: return ((o += 4), v.getInt32(o - 4, true));
      case 6: return ((o += 4), v.getFloat32(o - 4, true));
      case 7: return v.getUint8(o++) !== 0;
      case 8: return str();
      case 10: return u64();
      case 12: return ((o += 8), v.getFloat64(o - 8, true));
      default: throw new Error(`type ${t} not handled by the test parser`);
    }
  };
  const magic = new TextDecoder().decode(buf.subarray(0, 4));
  o = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, unknown>();
  const types = new Map<string, number>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    types.set(key, t);
    if (t === 9) {
      const it = u32();
      const n = u64();
      const arr: unknown[] = [];
      for (let j = 0; j < n; j++) arr.push(scalar(it));
      metadata.set(key, arr);
      types.set(key, 900 + it);
    } else metadata.set(key, scalar(t));
  }
  const tensors: Array<{ name: string; ne: number[]; type: number; offset: number }> = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const ne: number[] = [];
    for (let j = 0; j < nd; j++) ne.push(u64());
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const align = (metadata.get('general.alignment') as number | undefined) ?? 32;
  const dataOffset = Math.ceil(o / align) * align;
  return { magic, version, metadata, types, tensors, dataOffset };
}
