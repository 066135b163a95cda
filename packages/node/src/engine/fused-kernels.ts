import * as tf from '@tensorflow/tfjs-core';

/**
 * Fused kernels for the per-token hot path. Between its matMuls a layer does little arithmetic but, written with
 * stock tfjs ops, it takes ~15 kernel launches (each a few µs of dispatch, allocation and copying). These kernels do
 * the same arithmetic in one pass over the backend's own memory: RMSNorm, RoPE applied to Q and K while splitting
 * QKV, and SwiGLU. They are registered as tfjs kernels for the wasm and cpu backends; on any other backend (tfjs-node)
 * the composite of stock ops below runs instead, with identical results.
 */

type TensorInfo = tf.TensorInfo;

/** The two things a JS kernel needs from a backend: a view of an input's values, and a fresh output. */
interface MemoryAccess {
  read(t: TensorInfo): Float32Array;
  /** Creates an output; views taken earlier may be invalid afterwards (the wasm heap can grow), so read after. */
  alloc(shape: number[]): TensorInfo;
  write(t: TensorInfo): Float32Array;
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}
interface CpuBackendLike {
  data: { get(id: tf.DataId): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

function memoryOf(backendName: string, backend: object): MemoryAccess {
  if (backendName === 'wasm') {
    const b = backend as WasmBackendLike;
    return { read: (t) => b.typedArrayFromHeap(t), alloc: (s) => b.makeOutput(s, 'float32'), write: (t) => b.typedArrayFromHeap(t) };
  }
  const b = backend as CpuBackendLike;
  return {
    read: (t) => b.data.get(t.dataId).values,
    alloc: (s) => b.makeTensorInfo(s, 'float32', new Float32Array(s.reduce((a, c) => a * c, 1))),
    write: (t) => b.data.get(t.dataId).values,
  };
}

const RMS_NORM = 'EdgeNodeRmsNorm';
const ROPE_SPLIT = 'EdgeNodeRopeSplitQkv';
const CAUSAL_SOFTMAX = 'EdgeNodeCausalSoftmaxColumns';
const APPEND_COLUMNS = 'EdgeNodeAppendColumns';
const MERGE_HEADS = 'EdgeNodeMergeHeads';
const SWIGLU = 'EdgeNodeSwiGlu';
const JS_BACKENDS = ['wasm', 'cpu'];

for (const backendName of JS_BACKENDS) {
  tf.registerKernel({
    kernelName: RMS_NORM,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const x = inputs.x as TensorInfo;
      const [rows, width] = x.shape;
      const eps = (attrs as { eps: number }).eps;
      const out = mem.alloc([rows, width]);
      const xs = mem.read(x);
      const ys = mem.write(out);
      for (let r = 0; r < rows; r++) {
        const o = r * width;
        let ss = 0;
        for (let i = 0; i < width; i++) ss += xs[o + i] * xs[o + i];
        const scale = 1 / Math.sqrt(ss / width + eps);
        for (let i = 0; i < width; i++) ys[o + i] = xs[o + i] * scale;
      }
      return out;
    },
  });

  tf.registerKernel({
    kernelName: ROPE_SPLIT,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const qkv = inputs.qkv as TensorInfo;
      const { kvHeads, group, headDim, cos, sin } = attrs as unknown as RopeAttrs;
      const n = qkv.shape[0];
      const d = headDim;
      const half = d / 2;
      const qDim = kvHeads * group * d;
      const kvDim = kvHeads * d;
      const width = qDim + 2 * kvDim;
      const ropeWidth = qDim + kvDim;
      const outs: TensorInfo[] = [];
      for (let h = 0; h < kvHeads; h++) outs.push(mem.alloc([d, group * n]));
      for (let h = 0; h < kvHeads; h++) outs.push(mem.alloc([n, d]));
      for (let h = 0; h < kvHeads; h++) outs.push(mem.alloc([d, n]));
      const src = mem.read(qkv);
      const views = outs.map((o) => mem.write(o));
      const rope = (row: number, tab: number, c: number): number => {
        const partner = c % d < half ? c + half : c - half;
        return src[row + c] * cos[tab + c] + src[row + partner] * sin[tab + c];
      };
      for (let i = 0; i < n; i++) {
        const row = i * width;
        const tab = i * ropeWidth;
        for (let h = 0; h < kvHeads; h++) {
          // Q heads of KV group h, transposed: [d, group·n], column = (query head in group, token).
          const qT = views[h];
          for (let gi = 0; gi < group; gi++) {
            const col0 = (h * group + gi) * d;
            const col = gi * n + i;
            for (let j = 0; j < d; j++) qT[j * group * n + col] = rope(row, tab, col0 + j);
          }
          const k = views[kvHeads + h];
          const vT = views[2 * kvHeads + h];
          for (let j = 0; j < d; j++) {
            k[i * d + j] = rope(row, tab, qDim + h * d + j);
            vT[j * n + i] = src[row + ropeWidth + h * d + j];
          }
        }
      }
      return outs;
    },
  });

  tf.registerKernel({
    kernelName: CAUSAL_SOFTMAX,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const scores = inputs.scores as TensorInfo;
      const { n, start } = attrs as { n: number; start: number };
      const [T, cols] = scores.shape;
      const out = mem.alloc([T, cols]);
      const s = mem.read(scores);
      const p = mem.write(out);
      for (let c = 0; c < cols; c++) {
        // Column c is query (c mod n) at position start + (c mod n): it may see positions 0..start + c mod n.
        const visible = start + (c % n) + 1;
        let max = -Infinity;
        for (let t = 0; t < visible; t++) max = Math.max(max, s[t * cols + c]);
        let sum = 0;
        for (let t = 0; t < visible; t++) {
          const e = Math.exp(s[t * cols + c] - max);
          p[t * cols + c] = e;
          sum += e;
        }
        for (let t = 0; t < visible; t++) p[t * cols + c] /= sum;
        for (let t = visible; t < T; t++) p[t * cols + c] = 0;
      }
      return out;
    },
  });

  tf.registerKernel({
    kernelName: APPEND_COLUMNS,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const mem = memoryOf(backendName, backend);
      const a = inputs.a as TensorInfo;
      const b = inputs.b as TensorInfo;
      const [rows, ca] = a.shape;
      const cb = b.shape[1];
      const out = mem.alloc([rows, ca + cb]);
      const av = mem.read(a);
      const bv = mem.read(b);
      const ov = mem.write(out);
      for (let r = 0; r < rows; r++) {
        ov.set(av.subarray(r * ca, (r + 1) * ca), r * (ca + cb));
        ov.set(bv.subarray(r * cb, (r + 1) * cb), r * (ca + cb) + ca);
      }
      return out;
    },
  });

  tf.registerKernel({
    kernelName: MERGE_HEADS,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const { n, group } = attrs as { n: number; group: number };
      const heads = Object.keys(inputs).length;
      const parts = Array.from({ length: heads }, (_, h) => inputs[`h${h}`] as TensorInfo);
      const d = parts[0].shape[0];
      const width = heads * group * d;
      const out = mem.alloc([n, width]);
      const ov = mem.write(out);
      for (let h = 0; h < heads; h++) {
        const oT = mem.read(parts[h]); // [d, group·n]
        const cols = group * n;
        for (let gi = 0; gi < group; gi++) {
          for (let i = 0; i < n; i++) {
            const dst = i * width + (h * group + gi) * d;
            const c = gi * n + i;
            for (let j = 0; j < d; j++) ov[dst + j] = oT[j * cols + c];
          }
        }
      }
      return out;
    },
  });

  tf.registerKernel({
    kernelName: SWIGLU,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const mem = memoryOf(backendName, backend);
      const gu = inputs.gateUp as TensorInfo;
      const [n, width] = gu.shape;
      const f = width / 2;
      const out = mem.alloc([n, f]);
      const src = mem.read(gu);
      const dst = mem.write(out);
      for (let r = 0; r < n; r++) {
        for (let i = 0; i < f; i++) {
          const g = src[r * width + i];
          dst[r * f + i] = (g / (1 + Math.exp(-g))) * src[r * width + f + i];
        }
      }
      return out;
    },
  });
}

interface RopeAttrs {
  kvHeads: number;
  group: number;
  headDim: number;
  /** [n, qDim + kvDim] tables from rope.ts */
  cos: Float32Array;
  sin: Float32Array;
}

let jsKernelsEnabled = true;
const usesJsKernels = (): boolean => jsKernelsEnabled && JS_BACKENDS.includes(tf.getBackend());

/** x / sqrt(mean(x²) + eps), row by row. */
export function rmsNorm(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  if (usesJsKernels()) return tf.engine().runKernel(RMS_NORM, { x }, { eps }) as tf.Tensor2D;
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps)));
}

/** Per KV head h: its queries transposed [d, g·n] (columns: query head in group, then token), new keys [n, d], new values transposed [d, n]. */
export interface HeadSplit {
  queriesT: tf.Tensor2D[];
  keys: tf.Tensor2D[];
  valuesT: tf.Tensor2D[];
}

/**
 * Splits [n, qDim + 2·kvDim] into per-KV-head queries, keys and transposed values, applying rotate_half RoPE to Q and
 * K with precomputed tables (`cos`, signed `sin`, [n, qDim + kvDim]; see rope.ts).
 */
export function ropeSplitQkv(qkv: tf.Tensor2D, tables: { cos: Float32Array; sin: Float32Array }, kvHeads: number, group: number, headDim: number): HeadSplit {
  const n = qkv.shape[0];
  let parts: tf.Tensor2D[];
  if (usesJsKernels()) {
    const attrs = { kvHeads, group, headDim, cos: tables.cos, sin: tables.sin } as unknown as tf.NamedAttrMap;
    parts = tf.engine().runKernel(ROPE_SPLIT, { qkv }, attrs) as unknown as tf.Tensor2D[];
  } else {
    const d = headDim;
    const qDim = kvHeads * group * d;
    const kvDim = kvHeads * d;
    const [qk, v] = tf.split(qkv, [qDim + kvDim, kvDim], 1);
    const partner = tf.tensor1d(ropePartnerIndex(qDim + kvDim, d), 'int32');
    const cos = tf.tensor2d(tables.cos, [n, qDim + kvDim]);
    const sin = tf.tensor2d(tables.sin, [n, qDim + kvDim]);
    const roped = tf.add(tf.mul(qk, cos), tf.mul(tf.gather(qk, partner, 1), sin));
    const [q, k] = tf.split(roped, [qDim, kvDim], 1);
    const qg = tf.transpose(tf.reshape(q, [n, kvHeads, group, d]), [1, 2, 0, 3]); // [kvH, g, n, d]
    parts = [
      ...tf.unstack(tf.transpose(tf.reshape(qg, [kvHeads, group * n, d]), [0, 2, 1])),
      ...tf.unstack(tf.transpose(tf.reshape(k, [n, kvHeads, d]), [1, 0, 2])),
      ...tf.unstack(tf.transpose(tf.reshape(v, [n, kvHeads, d]), [1, 2, 0])),
    ] as tf.Tensor2D[];
  }
  return { queriesT: parts.slice(0, kvHeads), keys: parts.slice(kvHeads, 2 * kvHeads), valuesT: parts.slice(2 * kvHeads) };
}

function ropePartnerIndex(width: number, d: number): Int32Array {
  const out = new Int32Array(width);
  for (let c = 0; c < width; c++) out[c] = c % d < d / 2 ? c + d / 2 : c - d / 2;
  return out;
}

/**
 * Softmax down each column of transposed scores [T, g·n], where column c is query c mod n at position
 * start + c mod n and sees only positions up to its own (causal).
 */
export function causalSoftmaxColumns(scoresT: tf.Tensor2D, n: number, start: number): tf.Tensor2D {
  if (usesJsKernels()) return tf.engine().runKernel(CAUSAL_SOFTMAX, { scores: scoresT }, { n, start }) as tf.Tensor2D;
  const [T, cols] = scoresT.shape;
  const mask = new Float32Array(cols * T);
  for (let c = 0; c < cols; c++) for (let t = start + (c % n) + 1; t < T; t++) mask[c * T + t] = -Infinity;
  return tf.transpose(tf.softmax(tf.add(tf.transpose(scoresT), tf.tensor2d(mask, [cols, T]))));
}

/** [r, a] ++ [r, b] → [r, a + b] (appending positions to transposed values). */
export function appendColumns(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (usesJsKernels()) return tf.engine().runKernel(APPEND_COLUMNS, { a, b }) as tf.Tensor2D;
  return tf.concat([a, b], 1);
}

/** Per-KV-head outputs [d, g·n] back to token rows [n, heads·d] in query-head order. */
export function mergeHeads(outputsT: tf.Tensor2D[], n: number, group: number): tf.Tensor2D {
  if (usesJsKernels()) {
    const inputs: tf.NamedTensorMap = {};
    outputsT.forEach((t, h) => (inputs[`h${h}`] = t));
    return tf.engine().runKernel(MERGE_HEADS, inputs, { n, group }) as tf.Tensor2D;
  }
  const d = outputsT[0].shape[0];
  const stacked = tf.stack(outputsT.map((o) => tf.reshape(tf.transpose(o), [group, n, d]))); // [kvH, g, n, d]
  return tf.reshape(tf.transpose(stacked, [2, 0, 1, 3]), [n, outputsT.length * group * d]);
}

/** Forces the stock-op versions (what tfjs-node runs), so tests can check both paths give the same numbers. */
export function setJsKernelsEnabled(enabled: boolean): void {
  jsKernelsEnabled = enabled;
}

/** silu(gate) · up for [n, 2·ffn] laid out [gate | up]. */
export function swiGlu(gateUp: tf.Tensor2D): tf.Tensor2D {
  if (usesJsKernels()) return tf.engine().runKernel(SWIGLU, { gateUp }) as tf.Tensor2D;
  const [gate, up] = tf.split(gateUp, 2, 1);
  return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
}
