import { turnEventLoop } from '../engine/compute-slices.js';
import { FrameCodec } from '../network/frame-codec.js';

/** What a step and a token cost this node whatever the model: the partitioner adds them to every stage and token. */
export interface FixedCosts {
  /** A stage's step outside its kernels: woken by a frame, a turn of the event loop, a frame decoded and one encoded. */
  stepOverheadMs: number;
  /** A token at its coordinator: woken by the token, a turn of the event loop, the next step's frame encoded. */
  tokenOverheadMs: number;
  /** Of those, the wake-up: a coordinator that computed the token's last stage itself is not woken by it. */
  wakeMs: number;
}

/** Wake-ups timed (at most, and for at most WAKE_BUDGET_MS); the slowest tenth is left out (one hiccup is not a fixed cost). */
const WAKE_SAMPLES = 24;
const WAKE_BUDGET_MS = 100;
const WAKE_WAIT_MS = 1;
const CODEC_SAMPLES = 9;
/**
 * Untimed round trips before the codec is timed. A node's frames go through a codec the JIT has long optimised; a
 * cold one took 3.4 ms, then 0.1–0.5 ms a round trip for its first ~40, and 0.01–0.03 ms after that, so timing it
 * cold priced every step at 2–4× its fixed cost (0.5 ms against 0.12 warm, on stories260K's bench).
 */
const CODEC_WARMUP = 64;
/** A one-row activation frame of a 2048-wide model (the frame bytes matter less than the codec's per-frame work). */
const PROBE_HIDDEN = 2048;

/**
 * Measures the fixed costs of a step and of a token on this node, in ~50 ms. A small model's step is mostly these:
 * every stage step and every token starts with the process being woken (by a frame or a token) — on a loaded machine
 * that wait for a core is most of it — then a turn of the event loop and the frames' codec. `between` runs between
 * samples (a rejection stops the measurement with that error).
 */
export async function measureFixedCosts(between: () => Promise<void>): Promise<FixedCosts> {
  const wakeMs = await meanWakeDelayMs(between);
  const turnMs = await medianMs(CODEC_SAMPLES, between, () => turnEventLoop());
  const codecMs = await medianMs(CODEC_SAMPLES, between, codecRoundTrip());
  return {
    stepOverheadMs: round3(wakeMs + turnMs + 2 * codecMs),
    tokenOverheadMs: round3(wakeMs + turnMs + codecMs),
    wakeMs: round3(wakeMs),
  };
}

/** Runs of the product each way, and the idle moment before a cold one (about a stage's wait for the next token in a ring). */
const PASS_SAMPLES = 5;
const PASS_IDLE_MS = 2;

/**
 * What a pass costs more when it starts after an idle moment than back to back: `run` (a small product) timed after
 * PASS_IDLE_MS asleep and right after a run, medians. A stage at one request a time idles between its steps, and
 * its first kernels then wait on caches and a core woken anew: on stories260K a pass took 0.03–0.13 ms back to back
 * and 0.1 ms more after 3 ms asleep, whatever its layers — a cost of the pass that a speed ratio scaled with the
 * layers got wrong (its calibration read 1.4× on five layers and 4.3× on two).
 */
export async function measurePassOverheadMs(run: () => void, between: () => Promise<void>): Promise<number> {
  const hot: number[] = [];
  const cold: number[] = [];
  run();
  for (let i = 0; i < PASS_SAMPLES; i++) {
    await between();
    run();
    const t0 = performance.now();
    run();
    hot.push(performance.now() - t0);
    await new Promise((resolve) => setTimeout(resolve, PASS_IDLE_MS));
    const t1 = performance.now();
    run();
    cold.push(performance.now() - t1);
  }
  return round3(Math.max(0, middle(cold) - middle(hot)));
}

function middle(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}

/** Mean lateness of a short timer: how long the process waits for a core once it has something to do. */
async function meanWakeDelayMs(between: () => Promise<void>): Promise<number> {
  const late: number[] = [];
  const until = performance.now() + WAKE_BUDGET_MS;
  for (let i = 0; i < WAKE_SAMPLES && (i < 5 || performance.now() < until); i++) {
    await between();
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, WAKE_WAIT_MS));
    late.push(Math.max(0, performance.now() - t0 - WAKE_WAIT_MS));
  }
  late.sort((a, b) => a - b);
  const kept = late.slice(0, Math.ceil(late.length * 0.9));
  return kept.reduce((s, x) => s + x, 0) / kept.length;
}

/** Encodes and decodes a one-row activation-like frame with the wire codec. */
function codecRoundTrip(): () => void {
  const codec = new FrameCodec();
  const frame = { t: 'act', v: 1, rid: 'probe-0123456789abcdef', stage: 1, step: 2, pos: 64, n: 1, final: true, hidden: Float32Array.from({ length: PROBE_HIDDEN }, (_, i) => Math.sin(i)), stageMs: [1.5] };
  const roundTrip = () => void codec.decodeFrame(codec.encode(frame));
  for (let i = 0; i < CODEC_WARMUP; i++) roundTrip();
  return roundTrip;
}

async function medianMs(samples: number, between: () => Promise<void>, fn: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    await between();
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
