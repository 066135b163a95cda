/**
 * GGML tensor type ids as written in GGUF tensor infos, with their block geometry. The table covers every
 * type llama.cpp has shipped so a reader can bound-check and name any tensor, even the ones edge-node
 * cannot dequantise (those fail later with UnsupportedTensorTypeError naming the type).
 */
export interface GgmlTypeInfo {
  id: number;
  name: string;
  /** Elements per block (1 for plain scalar types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
  /** Offsets of the block's f16 scales (ggml-common.h), for the types the kernels multiply; the rest is quants and sub-scales. */
  halfScaleOffsets?: readonly number[];
}

const TYPES: readonly GgmlTypeInfo[] = [
  { id: 0, name: 'F32', blockSize: 1, typeSize: 4 },
  { id: 1, name: 'F16', blockSize: 1, typeSize: 2 },
  { id: 2, name: 'Q4_0', blockSize: 32, typeSize: 18, halfScaleOffsets: [0] },
  { id: 3, name: 'Q4_1', blockSize: 32, typeSize: 20, halfScaleOffsets: [0, 2] },
  { id: 6, name: 'Q5_0', blockSize: 32, typeSize: 22, halfScaleOffsets: [0] },
  { id: 7, name: 'Q5_1', blockSize: 32, typeSize: 24, halfScaleOffsets: [0, 2] },
  { id: 8, name: 'Q8_0', blockSize: 32, typeSize: 34, halfScaleOffsets: [0] },
  { id: 9, name: 'Q8_1', blockSize: 32, typeSize: 36 },
  { id: 10, name: 'Q2_K', blockSize: 256, typeSize: 84, halfScaleOffsets: [80, 82] },
  { id: 11, name: 'Q3_K', blockSize: 256, typeSize: 110, halfScaleOffsets: [108] },
  { id: 12, name: 'Q4_K', blockSize: 256, typeSize: 144, halfScaleOffsets: [0, 2] },
  { id: 13, name: 'Q5_K', blockSize: 256, typeSize: 176, halfScaleOffsets: [0, 2] },
  { id: 14, name: 'Q6_K', blockSize: 256, typeSize: 210, halfScaleOffsets: [208] },
  { id: 15, name: 'Q8_K', blockSize: 256, typeSize: 292 },
  { id: 16, name: 'IQ2_XXS', blockSize: 256, typeSize: 66 },
  { id: 17, name: 'IQ2_XS', blockSize: 256, typeSize: 74 },
  { id: 18, name: 'IQ3_XXS', blockSize: 256, typeSize: 98 },
  { id: 19, name: 'IQ1_S', blockSize: 256, typeSize: 50 },
  { id: 20, name: 'IQ4_NL', blockSize: 32, typeSize: 18 },
  { id: 21, name: 'IQ3_S', blockSize: 256, typeSize: 110 },
  { id: 22, name: 'IQ2_S', blockSize: 256, typeSize: 82 },
  { id: 23, name: 'IQ4_XS', blockSize: 256, typeSize: 136 },
  { id: 24, name: 'I8', blockSize: 1, typeSize: 1 },
  { id: 25, name: 'I16', blockSize: 1, typeSize: 2 },
  { id: 26, name: 'I32', blockSize: 1, typeSize: 4 },
  { id: 27, name: 'I64', blockSize: 1, typeSize: 8 },
  { id: 28, name: 'F64', blockSize: 1, typeSize: 8 },
  { id: 29, name: 'IQ1_M', blockSize: 256, typeSize: 56 },
  { id: 30, name: 'BF16', blockSize: 1, typeSize: 2 },
  { id: 34, name: 'TQ1_0', blockSize: 256, typeSize: 54 },
  { id: 35, name: 'TQ2_0', blockSize: 256, typeSize: 66 },
  { id: 39, name: 'MXFP4', blockSize: 32, typeSize: 17 },
];

const BY_ID = new Map(TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map(TYPES.map((t) => [t.name, t]));

/** The type for a GGUF type id, or undefined for ids llama.cpp never assigned (or retired). */
export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}

export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
  return BY_NAME.get(name);
}

/** Bytes of one row of `cols` values of a type (cols must be a multiple of its block size). */
export function ggmlRowBytes(type: GgmlTypeInfo, cols: number): number {
  if (cols % type.blockSize !== 0) throw new RangeError(`a ${type.name} row needs a multiple of ${type.blockSize} values, not ${cols}`);
  return (cols / type.blockSize) * type.typeSize;
}

/** The storage types the engine runs: everything llama.cpp's presets Q2_K … Q8_0 write (a Q4_K_M file mixes several). */
export const KERNEL_TYPE_NAMES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'] as const;
export type KernelTypeName = (typeof KERNEL_TYPE_NAMES)[number];
