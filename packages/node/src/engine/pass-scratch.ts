import type { KernelArena } from '@edge-node/kernels';
import type { ModelConfig } from '../model/model-config.js';
import type { PassRows } from './pass-rows.js';

/** The widths a pass works with, worked out once per shard. */
export interface ShardDims {
  H: number;
  qDim: number;
  kvDim: number;
  /** A row of qkv: Q, K and V side by side. */
  qkvW: number;
  F: number;
  /** The widest row a product takes as input: max(H, qDim, F). */
  widest: number;
  /** Attention's score scale, 1/√headDim. */
  scale: number;
}

export function shardDims(c: ModelConfig): ShardDims {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  return { H: c.hiddenSize, qDim, kvDim, qkvW: qDim + 2 * kvDim, F, widest: Math.max(c.hiddenSize, qDim, F), scale: 1 / Math.sqrt(c.headDim) };
}

/** Buffers of one pass in one arena (offsets), allocated for the pass and freed after it. */
export interface Scratch {
  arena: KernelArena;
  x: number; // residual stream [rows, H]
  h: number; // normalised input of the next product [rows, max(H, F)]
  tmp: number; // a product's output before it is added to x [rows, H]
  qkv: number; // [rows, qDim + 2·kvDim]
  attn: number; // [rows, qDim]
  ffn: number; // gate and up side by side [rows, 2F]
  act: number; // prepared (quantised) activations
  rope: number; // cos/sin per row [rows, headDim]
  scores: number; // attention scores [heads, positions]
  logits: number; // [rows that need logits, vocab], in the head's arena only
  blocks: number[];
}

/**
 * The scratch of one pass in every arena it goes through (a shard's layers may span several): allocated in an arena
 * when the pass first reaches it, with the rows' RoPE table filled in, and released when the pass ends.
 */
export class PassScratch {
  private readonly byArena = new Map<KernelArena, Scratch>();

  constructor(
    private readonly config: ModelConfig,
    private readonly dims: ShardDims,
    /** Rotary frequencies of the model (rope.ts). */
    private readonly freqs: Float64Array,
    /** The arena of the output head, where the logits buffer goes; null on a shard without the head. */
    private readonly headArena: KernelArena | null,
    private readonly rows: PassRows,
  ) {}

  /** This pass's scratch in `arena`. */
  in(arena: KernelArena): Scratch {
    let s = this.byArena.get(arena);
    if (!s) {
      s = this.alloc(arena);
      this.byArena.set(arena, s);
      this.ropeTable(s);
    }
    return s;
  }

  release(): void {
    for (const s of this.byArena.values()) for (const b of s.blocks) s.arena.release(b);
  }

  private alloc(arena: KernelArena): Scratch {
    const c = this.config;
    const rows = this.rows.count;
    const { H, qDim, kvDim, F, widest } = this.dims;
    const blocks: number[] = [];
    const f32 = (n: number): number => {
      const p = arena.alloc(n * 4);
      blocks.push(p);
      return p;
    };
    try {
      return {
        arena,
        x: f32(rows * H),
        h: f32(rows * widest),
        tmp: f32(rows * H),
        qkv: f32(rows * (qDim + 2 * kvDim)),
        attn: f32(rows * qDim),
        ffn: f32(rows * 2 * F),
        act: f32(2 * rows * widest + 256),
        rope: f32(rows * c.headDim),
        scores: f32(c.numHeads * this.rows.positions),
        logits: arena === this.headArena ? f32(Math.max(1, this.rows.logits.length) * c.vocabSize) : 0,
        blocks,
      };
    } catch (err) {
      for (const b of blocks) arena.release(b);
      throw err;
    }
  }

  /** cos and sin of each row's position times each rotary frequency, in f64 then rounded. */
  private ropeTable(s: Scratch): void {
    const positions = this.rows.pos;
    const half = this.config.headDim / 2;
    const t = s.arena.f32(s.rope, positions.length * half * 2);
    positions.forEach((pos, i) => {
      for (let j = 0; j < half; j++) {
        const a = pos * this.freqs[j];
        t[i * 2 * half + j] = Math.cos(a);
        t[i * 2 * half + half + j] = Math.sin(a);
      }
    });
  }
}
