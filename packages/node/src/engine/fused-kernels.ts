import * as tf from '@tensorflow/tfjs-core';
import { ropePartners } from './rope.js';

/**
 * Fused kernels for the per-token hot path. Between its matMuls a layer does little arithmetic, but written with
 * stock tfjs ops it takes ~25 kernel launches, each costing several µs of dispatch and allocation — at one token
 * that is as much time as the matmuls. These kernels do the same arithmetic in one pass over the backend's own
 * memory. They are registered as tfjs kernels for the wasm and cpu backends; on any other backend (tfjs-node) each
 * function below runs the equivalent composite of stock ops instead (a test checks both give the same logits).
 *
 *   rmsNorm            x → x / rms(x)
 *   addRmsNorm         (x, y) → (x + y, (x + y) / rms(x + y))        the residual add and the next norm in one pass
 *   attentionInputs    qkv + cache → per KV head: roped queriesᵀ, keys and valuesᵀ with the new positions appended
 *   causalSoftmax      softmax down the columns of transposed scores, causal
 *   mergeHeads         per-head outputs back to token rows
 *   swiGlu             [gate | up] → silu(gate) · up
 */

type TensorInfo = tf.TensorInfo;

/** The two things a JS kernel needs from a backend: a view of an input's values, and a fresh output. */
interface MemoryAccess {
  view(t: TensorInfo): Float32Array;
  /** Creates an output. The wasm heap may grow here, invalidating views taken earlier: allocate first, then view. */
  alloc(shape: number[]): TensorInfo;
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
    return { view: (t) => b.typedArrayFromHeap(t), alloc: (s) => b.makeOutput(s, 'float32') };
  }
  const b = backend as CpuBackendLike;
  return {
    view: (t) => b.data.get(t.dataId).values,
    alloc: (s) => b.makeTensorInfo(s, 'float32', new Float32Array(s.reduce((a, c) => a * c, 1))),
  };
}

const RMS_NORM = 'EdgeNodeRmsNorm';
const ADD_RMS_NORM = 'EdgeNodeAddRmsNorm';
const ATTENTION_INPUTS = 'EdgeNodeAttentionInputs';
const CAUSAL_SOFTMAX = 'EdgeNodeCausalSoftmaxColumns';
const MERGE_HEADS = 'EdgeNodeMergeHeads';
const SWIGLU = 'EdgeNodeSwiGlu';
const JS_BACKENDS = ['wasm', 'cpu'];

function normalizeRows(src: Float32Array, dst: Float32Array, rows: number, width: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let ss = 0;
    for (let i = 0; i < width; i++) ss += src[o + i] * src[o + i];
    const scale = 1 / Math.sqrt(ss / width + eps);
    for (let i = 0; i < width; i++) dst[o + i] = src[o + i] * scale;
  }
}

interface AttentionAttrs {
  kvHeads: number;
  group: number;
  headDim: number;
  /** Positions already in the cache (0: no cache inputs). */
  cached: number;
  /** [n, qDim + kvDim] tables from rope.ts */
  cos: Float32Array;
  sin: Float32Array;
}

for (const backendName of JS_BACKENDS) {
  tf.registerKernel({
    kernelName: RMS_NORM,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const x = inputs.x as TensorInfo;
      const out = mem.alloc(x.shape);
      normalizeRows(mem.view(x), mem.view(out), x.shape[0], x.shape[1], (attrs as { eps: number }).eps);
      return out;
    },
  });

  tf.registerKernel({
    kernelName: ADD_RMS_NORM,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const x = inputs.x as TensorInfo;
      const sum = mem.alloc(x.shape);
      const normed = mem.alloc(x.shape);
      const xs = mem.view(x);
      const ys = mem.view(inputs.y as TensorInfo);
      const s = mem.view(sum);
      for (let i = 0; i < s.length; i++) s[i] = xs[i] + ys[i];
      normalizeRows(s, mem.view(normed), x.shape[0], x.shape[1], (attrs as { eps: number }).eps);
      return [sum, normed];
    },
  });

  tf.registerKernel({
    kernelName: ATTENTION_INPUTS,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const mem = memoryOf(backendName, backend);
      const { kvHeads, group, headDim: d, cached, cos, sin } = attrs as unknown as AttentionAttrs;
      const qkv = inputs.qkv as TensorInfo;
      const n = qkv.shape[0];
      const T = cached + n;
      const half = d / 2;
      const qDim = kvHeads * group * d;
      const width = qDim + 2 * kvHeads * d;
      const ropeWidth = qDim + kvHeads * d;
      const outs: TensorInfo[] = [];
      for (let h = 0; h < kvHeads; h++) outs.push(mem.alloc([d, group * n]));
      for (let h = 0; h < kvHeads; h++) outs.push(mem.alloc([T, d]));
      for (let h = 0; h < kvHeads; h++) outs.push(mem.alloc([d, T]));
      const src = mem.view(qkv);
      const rope = (row: number, tab: number, c: number): number => {
        const partner = c % d < half ? c + half : c - half;
        return src[row + c] * cos[tab + c] + src[row + partner] * sin[tab + c];
      };
      for (let h = 0; h < kvHeads; h++) {
        const qT = mem.view(outs[h]);
        const keys = mem.view(outs[kvHeads + h]);
        const valuesT = mem.view(outs[2 * kvHeads + h]);
        if (cached > 0) {
          // The cache so far: keys [cached, d] are a prefix of the new [T, d]; valuesᵀ [d, cached] a prefix of each row.
          keys.set(mem.view(inputs[`k${h}`] as TensorInfo));
          const oldV = mem.view(inputs[`v${h}`] as TensorInfo);
          for (let j = 0; j < d; j++) valuesT.set(oldV.subarray(j * cached, (j + 1) * cached), j * T);
        }
        for (let i = 0; i < n; i++) {
          const row = i * width;
          const tab = i * ropeWidth;
          // Queries of the g heads sharing KV head h, transposed: [d, g·n], column = (head in group, token).
          for (let gi = 0; gi < group; gi++) {
            const col0 = (h * group + gi) * d;
            const col = gi * n + i;
            for (let j = 0; j < d; j++) qT[j * group * n + col] = rope(row, tab, col0 + j);
          }
          const t = cached + i;
          for (let j = 0; j < d; j++) {
            keys[t * d + j] = rope(row, tab, qDim + h * d + j);
            valuesT[j * T + t] = src[row + ropeWidth + h * d + j];
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
      const s = mem.view(scores);
      const p = mem.view(out);
      for (let c = 0; c < cols; c++) {
        // Column c is query c mod n, at position start + c mod n: it sees positions 0 .. start + c mod n.
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
      const ov = mem.view(out);
      const cols = group * n;
      for (let h = 0; h < heads; h++) {
        const oT = mem.view(parts[h]); // [d, g·n]
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
      const src = mem.view(gu);
      const dst = mem.view(out);
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

let jsKernelsEnabled = true;
const JS_SWIGLU_MAX_ROWS = 4;
const usesJsKernels = (): boolean => jsKernelsEnabled && JS_BACKENDS.includes(tf.getBackend());

/** Forces the stock-op versions (what tfjs-node runs), so tests can check both paths give the same numbers. */
export function setJsKernelsEnabled(enabled: boolean): void {
  jsKernelsEnabled = enabled;
}

function stockRmsNorm(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps)));
}

/** x / sqrt(mean(x²) + eps), row by row; the learned scale is folded into the next matrix. */
export function rmsNorm(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  if (usesJsKernels()) return tf.engine().runKernel(RMS_NORM, { x }, { eps }) as tf.Tensor2D;
  return stockRmsNorm(x, eps);
}

/** The residual add and the following RMSNorm: returns [x + y, rmsNorm(x + y)]. */
export function addRmsNorm(x: tf.Tensor2D, y: tf.Tensor2D, eps: number): [tf.Tensor2D, tf.Tensor2D] {
  if (usesJsKernels()) return tf.engine().runKernel(ADD_RMS_NORM, { x, y }, { eps }) as unknown as [tf.Tensor2D, tf.Tensor2D];
  const sum: tf.Tensor2D = tf.add(x, y);
  return [sum, stockRmsNorm(sum, eps)];
}

/** Per KV head h: its queries transposed [d, g·n], and the whole cache after this step: keys [T, d], valuesᵀ [d, T]. */
export interface AttentionInputs {
  queriesT: tf.Tensor2D[];
  keys: tf.Tensor2D[];
  valuesT: tf.Tensor2D[];
}

/**
 * From the fused QKV projection [n, qDim + 2·kvDim]: applies rotate_half RoPE to Q and K (precomputed tables,
 * [n, qDim + kvDim]; see rope.ts), regroups the queries per KV head, and appends the new keys and values to the
 * cache (`cachedKeys`/`cachedValuesT`, empty on the first pass).
 */
export function attentionInputs(
  qkv: tf.Tensor2D,
  tables: { cos: Float32Array; sin: Float32Array },
  kvHeads: number,
  group: number,
  headDim: number,
  cachedKeys: readonly tf.Tensor2D[],
  cachedValuesT: readonly tf.Tensor2D[],
): AttentionInputs {
  const n = qkv.shape[0];
  const cached = cachedKeys.length ? cachedKeys[0].shape[0] : 0;
  let parts: tf.Tensor2D[];
  if (usesJsKernels()) {
    const inputs: tf.NamedTensorMap = { qkv };
    cachedKeys.forEach((k, h) => (inputs[`k${h}`] = k));
    cachedValuesT.forEach((v, h) => (inputs[`v${h}`] = v));
    const attrs = { kvHeads, group, headDim, cached, cos: tables.cos, sin: tables.sin } as unknown as tf.NamedAttrMap;
    parts = tf.engine().runKernel(ATTENTION_INPUTS, inputs, attrs) as unknown as tf.Tensor2D[];
  } else {
    const d = headDim;
    const qDim = kvHeads * group * d;
    const kvDim = kvHeads * d;
    const [qk, v] = tf.split(qkv, [qDim + kvDim, kvDim], 1);
    const partner = tf.tensor1d(ropePartners(kvHeads * group + kvHeads, d), 'int32');
    const cos = tf.tensor2d(tables.cos, [n, qDim + kvDim]);
    const sin = tf.tensor2d(tables.sin, [n, qDim + kvDim]);
    const roped = tf.add(tf.mul(qk, cos), tf.mul(tf.gather(qk, partner, 1), sin));
    const [q, k] = tf.split(roped, [qDim, kvDim], 1);
    const qg = tf.transpose(tf.reshape(q, [n, kvHeads, group, d]), [1, 2, 0, 3]); // [kvH, g, n, d]
    const newKeys = tf.unstack(tf.transpose(tf.reshape(k, [n, kvHeads, d]), [1, 0, 2])) as tf.Tensor2D[];
    const newValuesT = tf.unstack(tf.transpose(tf.reshape(v, [n, kvHeads, d]), [1, 2, 0])) as tf.Tensor2D[];
    parts = [
      ...(tf.unstack(tf.transpose(tf.reshape(qg, [kvHeads, group * n, d]), [0, 2, 1])) as tf.Tensor2D[]),
      ...newKeys.map((nk, h) => (cached ? tf.concat([cachedKeys[h], nk], 0) : nk)),
      ...newValuesT.map((nv, h) => (cached ? tf.concat([cachedValuesT[h], nv], 1) : nv)),
    ];
  }
  return { queriesT: parts.slice(0, kvHeads), keys: parts.slice(kvHeads, 2 * kvHeads), valuesT: parts.slice(2 * kvHeads) };
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

/**
 * silu(gate) · up for [n, 2·ffn] laid out [gate | up]. The JS kernel wins for a token or a few (one launch instead of
 * four); for a prompt, the backend's vectorised sigmoid beats a Math.exp per element.
 */
export function swiGlu(gateUp: tf.Tensor2D): tf.Tensor2D {
  if (usesJsKernels() && gateUp.shape[0] <= JS_SWIGLU_MAX_ROWS) return tf.engine().runKernel(SWIGLU, { gateUp }) as tf.Tensor2D;
  const [gate, up] = tf.split(gateUp, 2, 1);
  return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
}
