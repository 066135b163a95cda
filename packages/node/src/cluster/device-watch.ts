import { readFileSync } from 'node:fs';
import os from 'node:os';
import { turnEventLoop } from '../engine/compute-slices.js';
import type { NodeLogger } from '../network/node-logger.js';
import { SlowdownEstimator, announcedSlowdown, memoryPressureCap, type DeviceLoad, type MemoryPressureState, type SlowdownPolicy } from './device-load.js';
import { PROBE_WINDOW_MS, probeSlowdown, recentRuns, type ProbeRun } from './probe-slowdown.js';
import { BlockMeans } from './block-means.js';

export interface DeviceWatchOptions {
  /** The memory budget of the device profile (--memory-budget or a share of free memory at start). */
  profileMemoryBytes: number;
  /** Called with every announced change. */
  announce: (load: DeviceLoad) => void;
  /** Bytes of model weights this node holds now (what shedding layers frees). */
  heldBytes: () => number;
  log: NodeLogger;
  /** Sampling period. Default 1000 ms. */
  intervalMs?: number;
  /** Without stage compute for this long, the probe kernel measures the device. Default 3000 ms. */
  probeAfterIdleMs?: number;
  /** Memory kept free for the OS and other programs before the node sheds layers. Default 128 MB. */
  memoryReserveBytes?: number;
  slowdown?: SlowdownPolicy;
  /** Whether the idle probe is worth running now (a node without a model serves no stage). Default: always. */
  probeWhen?: () => boolean;
  /**
   * One piece of the idle probe's fixed work (run PROBE_PIECES times, the event loop turning between pieces; the
   * run's wall time is the measurement). Default: about 2 ms of float loop.
   */
  probe?: () => void;
  /** How far back the idle probe's fastest run counts (probe-slowdown.ts). Default 4000 ms. */
  probeWindowMs?: number;
}

/** A stage run the watch is told of: a decode step (a few rows) or a slice of a prompt. */
export type ComputeKind = 'decode' | 'prompt';

/**
 * The calibration to announce: the estimate (rounded) once it moves by more than 10 % from the one announced, else
 * that one (it only improves as the device has quieter moments, and each announcement makes every node re-plan).
 */
function calibrationToAnnounce(announced: number | null, estimate: number | null): number | null {
  if (estimate === null) return announced;
  const rounded = Math.round(estimate * 100) / 100;
  return announced === null || Math.abs(rounded / announced - 1) > 0.1 ? rounded : announced;
}

/**
 * The hop excess to announce: the estimate (to 0.01 ms) once it moves from the one announced by more than 0.05 ms and
 * 10 %, else that one (each announcement makes every node re-plan).
 */
function hopExcessToAnnounce(announced: number | undefined, estimate: number | null): number | undefined {
  if (estimate === null) return announced;
  const rounded = Math.round(estimate * 100) / 100;
  if (announced === undefined) return rounded;
  const moved = Math.abs(rounded - announced);
  return moved > 0.05 && moved > 0.1 * Math.abs(announced) ? rounded : announced;
}

/**
 * Watches the device while the node serves: how long its own stage compute takes against what its profile
 * predicts, a probe kernel when it computes nothing, the CPU time other processes take, and free memory
 * (the OS's and its cgroup's). Announces a smoothed load; a short spike is not a change.
 */
export class DeviceWatch {
  private stage: SlowdownEstimator;
  /** The prompt's slices against the profile's prefill speed: a calibration only (too rare to say how busy). */
  private promptStage: SlowdownEstimator;
  /** What the cost model prices a hop of the ring last served at now (setServedRingLatency). */
  private ringLatency: number | null = null;
  /**
   * The network hops of the requests this node coordinates: measured − fixed costs ms per hop over the recent blocks
   * together — a mean of every block, not less the slowest as a calibration is: nothing else scales a hop, and a
   * ring's hops stall often enough (a receiver waiting for a core) that its quietest block read 0.5 ms a step below
   * its mean on stories260K's 3-node ring, and the lower median of a split's few blocks 0.4–0.6 ms a step below.
   */
  private readonly hops = new BlockMeans('difference');
  /** The idle probe's runs of the last window, and its fastest run ever (the device quiet). */
  private probeRuns: ProbeRun[] = [];
  private probeBestMs = Infinity;
  private load: DeviceLoad;
  private timer: NodeJS.Timeout | null = null;
  private lastCpu: { at: number; busyTicks: number; ownUs: number } | null = null;
  private pressure: MemoryPressureState | null = null;
  private operatorBudget: number | null = null;
  private readonly interval: number;
  private probing = false;

  constructor(private readonly opts: DeviceWatchOptions) {
    this.stage = new SlowdownEstimator(opts.slowdown);
    this.promptStage = new SlowdownEstimator(opts.slowdown);
    this.interval = opts.intervalMs ?? 1000;
    this.load = {
      slowdown: 1,
      calibration: null,
      promptCalibration: null,
      source: 'none',
      since: Date.now(),
      otherCpuCores: 0,
      availableMemoryBytes: availableMemory(),
      memoryBudgetBytes: opts.profileMemoryBytes,
      memoryReason: '',
    };
  }

  start(): void {
    this.sampleCpu();
    // The idle probe's quiet figure, taken now, before the node serves: otherwise a node that serves from its first
    // minutes probes first when its layers have moved away, throttled, takes that for quiet and takes them back.
    if (this.opts.probeWhen?.() ?? true) void this.probeBaseline().catch((e: unknown) => this.opts.log.warn(`device load probe failed: ${(e as Error).message}`));
    this.timer = setInterval(() => this.tick(), this.interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  current(): DeviceLoad {
    return this.load;
  }

  /**
   * One run of this node's stage: `measuredMs` of compute where the node's profile predicts `expectedMs` — a decode
   * step (how busy the device is, and its calibration) or a prompt's slice (its prompt calibration). On the kind's
   * first run after the profile was re-measured, `expectedByPreviousMs` is what the previous profile predicted for the
   * same run, and the kind's calibration is rescaled by it: it is relative to the profile's figures. Started afresh instead, a
   * calibration whose first runs met a throttle took the throttle for the device's own speed (22× in
   * bench:load-faults), kept it after the lift, and the node never got layers back.
   *
   * `newRange`: the run is of other layers than the kind's previous one. A node announced quiet then starts the kind
   * afresh: the profile's prediction is right in proportion only where the kernels dominate, and on a small model
   * a pass's own cost made two layers read 3× as slow against the profile as five, so the node read busy (2.2×)
   * after a move. A node announced busy keeps its figures (it is shedding layers because of that load).
   *
   * `passMs` (a prompt's slice, whose expectedMs is its roofline alone): the pass after idling, which the planner
   * prices at the decode calibration; the prompt calibration is read on what the slice took beyond that.
   */
  observeCompute(measuredMs: number, expectedMs: number, kind: ComputeKind = 'decode', expectedByPreviousMs?: number, newRange = false, passMs = 0): void {
    const estimator = kind === 'prompt' ? this.promptStage : this.stage;
    if (newRange && this.load.slowdown === 1) estimator.restart();
    else if (expectedByPreviousMs !== undefined) estimator.rescale(expectedByPreviousMs / expectedMs);
    const beyondPass = measuredMs - passMs * (this.stage.calibration() ?? 1);
    estimator.add(Date.now(), beyondPass, expectedMs, this.load.slowdown > 1);
  }

  /**
   * One decode step of a request this node coordinates: `measuredMs` of it outside the stages' compute (round trip
   * and the coordinator's turn, less every stage's compute) where the cost model prices `fixedMs` besides the hops'
   * latency (their transfer, the devices' fixed costs), over `hops` network hops, at `at` (ms since epoch; served-hops.ts).
   */
  observeServedStep(measuredMs: number, fixedMs: number, hops: number, at = Date.now()): void {
    if (hops > 0) this.hops.add(at, measuredMs / hops, fixedMs / hops);
  }

  /**
   * What the cost model prices a hop of the ring last served at now (its links' pings, hop-latency.ts), or null: the
   * excess announced is the served hops' latency beyond it, so a link re-measured since they ran moves it too.
   */
  setServedRingLatency(latencyPerHopMs: number | null): void {
    this.ringLatency = latencyPerHopMs;
  }

  /** The served hops' latency beyond what their ring's links price it at now, ms per hop, or null before both are known. */
  private hopExcess(): number | null {
    const served = this.hops.recentMean();
    return served === null || this.ringLatency === null ? null : served - this.ringLatency;
  }

  /** The operator's run-time memory budget (bytes), or null for the profile's. */
  setMemoryBudget(bytes: number | null): void {
    this.operatorBudget = bytes;
    this.tick();
  }

  private tick(): void {
    const now = Date.now();
    const probeAfter = this.opts.probeAfterIdleMs ?? 3000;
    const stageFresh = this.stage.slowdown() !== null && now - this.stage.lastSampleAt < probeAfter;
    if (!stageFresh && !this.probing && (this.opts.probeWhen?.() ?? true)) void this.runProbe().catch((e: unknown) => this.opts.log.warn(`device load probe failed: ${(e as Error).message}`));
    const window = this.opts.probeWindowMs ?? PROBE_WINDOW_MS;
    this.probeRuns = recentRuns(this.probeRuns, now, window);
    const probed = stageFresh ? null : probeSlowdown(this.probeRuns, this.probeBestMs, now, window);
    const estimate = stageFresh ? this.stage.slowdown() : probed;
    // Without a fresh figure the announced one stays, and so does what it came from.
    const source: DeviceLoad['source'] = stageFresh ? 'stage' : probed !== null ? 'probe' : this.load.source;
    const slowdown = estimate === null ? this.load.slowdown : announcedSlowdown(this.load.slowdown, estimate, this.opts.slowdown);
    const available = availableMemory();
    const reserve = this.opts.memoryReserveBytes ?? 128e6;
    this.pressure = memoryPressureCap(this.pressure, { availableBytes: available, heldBytes: this.opts.heldBytes(), reserveBytes: reserve });
    let budget = this.opts.profileMemoryBytes;
    let reason = '';
    if (this.operatorBudget !== null && this.operatorBudget < budget) {
      budget = this.operatorBudget;
      reason = `lowered to ${mb(budget)} at run time`;
    }
    if (this.pressure && this.pressure.capBytes < budget) {
      budget = this.pressure.capBytes;
      reason = `memory pressure: ${mb(available)} available, below the ${mb(reserve)} reserve`;
    }
    const next: DeviceLoad = {
      slowdown,
      calibration: calibrationToAnnounce(this.load.calibration, this.stage.calibration()),
      promptCalibration: calibrationToAnnounce(this.load.promptCalibration, this.promptStage.calibration()),
      ...optionalHopExcess(hopExcessToAnnounce(this.load.hopExcessMs, this.hopExcess())),
      source,
      since: slowdown === this.load.slowdown ? this.load.since : now,
      otherCpuCores: this.sampleCpu(),
      availableMemoryBytes: available,
      memoryBudgetBytes: budget,
      memoryReason: reason,
    };
    const calibrationMoved = next.calibration !== this.load.calibration;
    const promptCalibrationMoved = next.promptCalibration !== this.load.promptCalibration;
    const hopExcessMoved = next.hopExcessMs !== this.load.hopExcessMs;
    const changed = calibrationMoved || promptCalibrationMoved || hopExcessMoved || next.slowdown !== this.load.slowdown || next.memoryBudgetBytes !== this.load.memoryBudgetBytes;
    const prev = this.load;
    this.load = next;
    if (changed) {
      if (next.slowdown !== prev.slowdown) {
        // A person reads the change of state (quiet ↔ busy) once; how busy, as it moves, is for the debug log.
        const line = `device load: ${next.slowdown === 1 ? 'quiet again' : `busy, ${next.slowdown}× slower than profiled`} (${next.source}; other processes use ${next.otherCpuCores.toFixed(1)} cores)`;
        if ((next.slowdown === 1) !== (prev.slowdown === 1)) this.opts.log.info(line);
        else this.opts.log.debug(line);
      }
      if (calibrationMoved) this.opts.log.info(`device calibration: stage compute takes ${next.calibration}× the profile's prediction when quiet`);
      if (promptCalibrationMoved) this.opts.log.info(`device calibration: a prompt takes ${next.promptCalibration}× the profile's prediction when quiet`);
      if (hopExcessMoved) this.opts.log.info(`served hops: each takes ${next.hopExcessMs} ms beyond what its link's ping and the stages' fixed costs price it at`);
      if (next.memoryBudgetBytes !== prev.memoryBudgetBytes) this.opts.log.info(`memory budget now ${mb(next.memoryBudgetBytes)}${reason ? ` (${reason})` : ''}`);
      this.opts.announce(next);
    }
  }

  /**
   * The quiet figure: a few probe runs one after another (the fastest counts), after one that is not counted: the
   * first run of the probe's code is not yet compiled and takes 2-4× as long.
   */
  private async probeBaseline(): Promise<void> {
    await this.runProbe(false);
    for (let i = 0; i < (this.opts.slowdown?.minSamples ?? 3); i++) await this.runProbe();
  }

  /**
   * Times the probe's work; its fastest run ever is this device when quiet, and its second-fastest of the last few
   * seconds the device now (probe-slowdown.ts). The work is 20–25 ms of CPU, long enough that a
   * CPU quota shows (a throttled process waits for the next period part-way), in pieces with the event loop turning
   * between them: at 5 % of a core, 25 ms of CPU in one piece would silence the node for half a second. The time is
   * the whole run's, turns included: a quota's wait falls as often between pieces as inside one (timing the pieces
   * alone, a node at 5 % of a core read quiet at times, and took its layers back still throttled), and the probe runs only while the node serves nothing.
   */
  private async runProbe(count = true): Promise<void> {
    this.probing = true;
    try {
      const t0 = performance.now();
      for (let i = 0; i < PROBE_PIECES; i++) {
        (this.opts.probe ?? defaultProbePiece)();
        await turnEventLoop();
      }
      const ms = performance.now() - t0;
      if (!count) return;
      this.probeBestMs = Math.min(this.probeBestMs, ms);
      this.probeRuns.push({ at: Date.now(), ms });
    } finally {
      this.probing = false;
    }
  }

  /** Cores' worth of CPU time other processes took since the last call (0 where /proc/stat is missing). */
  private sampleCpu(): number {
    const ticks = busyTicks();
    const at = performance.now();
    const u = process.cpuUsage();
    const ownUs = u.user + u.system;
    const prev = this.lastCpu;
    this.lastCpu = ticks === null ? null : { at, busyTicks: ticks, ownUs };
    if (!prev || ticks === null) return 0;
    const elapsedUs = (at - prev.at) * 1000;
    if (elapsedUs <= 0) return 0;
    // /proc/stat counts in USER_HZ (100 per second on Linux).
    const othersUs = (ticks - prev.busyTicks) * 10_000 - (ownUs - prev.ownUs);
    return Math.max(0, Math.round((othersUs / elapsedUs) * 100) / 100);
  }
}

/** The probe's data, made once: the probe must not add garbage every second. */
let probeData: Float64Array | null = null;

/** Pieces of the idle probe. */
const PROBE_PIECES = 10;

/** About 2-2.5 ms of float work on a quiet core: ten make a burst long enough that a CPU quota (10 ms per 100 ms) shows. */
function defaultProbePiece(): void {
  if (!probeData) {
    probeData = new Float64Array(4096);
    for (let i = 0; i < probeData.length; i++) probeData[i] = i * 1e-3;
  }
  const a = probeData;
  let s = 0;
  for (let r = 0; r < 300; r++) for (let i = 0; i < a.length; i++) s += a[i] * a[(i + r) & 4095];
  if (s === 42) console.log(''); // keeps the loop from being optimised away
}

function busyTicks(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return total - (f[3] ?? 0) - (f[4] ?? 0);
  } catch {
    return null;
  }
}

/** MemAvailable, or the headroom under this process's cgroup v1 memory limit when that is smaller. */
export function availableMemory(): number {
  let available = os.freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) available = Number(m[1]) * 1024;
  } catch {
    // not Linux: os.freemem() it is
  }
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
    if (line) {
      const dir = `/sys/fs/cgroup/memory${line.slice(line.lastIndexOf(':') + 1)}`;
      const limit = Number(readFileSync(`${dir}/memory.limit_in_bytes`, 'utf8'));
      const usage = Number(readFileSync(`${dir}/memory.usage_in_bytes`, 'utf8'));
      if (limit < 2 ** 60) available = Math.min(available, Math.max(0, limit - usage));
    }
  } catch {
    // no cgroup v1 memory controller
  }
  return available;
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(0)} MB`;
}

function optionalHopExcess(ms: number | undefined): { hopExcessMs?: number } {
  return ms === undefined ? {} : { hopExcessMs: ms };
}
