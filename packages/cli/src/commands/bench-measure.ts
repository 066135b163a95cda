import type { BenchInfo, BenchResponse } from '@edge-node/node';
import type { Cluster } from '@edge-node/partitioner';
import { pipelineRow, predictSplit, type BenchRow } from './bench-analysis.js';
import { BenchClient, BenchClusterError, LocalCluster, type BenchRequestShape } from './bench-cluster.js';
import { MIN_MEASURE_MS, type BenchOptions } from './bench-options.js';
import { BenchProgress } from './bench-progress.js';
import { speculationRow, type SpeculationRow } from './bench-speculation.js';
import { autoSplits, resolveSplits } from './bench-splits.js';

/** Warm-ups tried before a split whose route keeps differing is given up. */
const WARMUP_ATTEMPTS = 6;

/** What the split runs measured: their rows, the cluster as last seen, the prefix cache's share of their prompts. */
export interface SplitMeasurements {
  rows: BenchRow[];
  info: BenchInfo;
  /** Prompt tokens of the measured runs, and those the stages' prefix caches gave them. */
  prefix: { promptTokens: number; cachedTokens: number };
  lastClient: BenchClient | null;
  /** Each split's decode with speculation off and on, per concurrency (empty with --no-speculation). */
  speculation: SpeculationRow[];
}

/** Progress steps of one split: the warm-up, each concurrency's runs, and the speculation comparison's. */
const stepsPerSplit = (o: BenchOptions) => (1 + o.runs * o.concurrency.length) * (o.speculation ? 2 : 1);

/** The speculation comparison's requests: a prompt that prompt lookup can draft from. */
const QUOTING: BenchRequestShape = { prompt: 'quoting' };

/** Measures the baselines into the rows, with the cluster info the prediction needs; counted by `progress`. */
export type BaselineRunner = (info: BenchInfo, progress: BenchProgress) => Promise<BenchRow[]>;

const routeOf = (r: BenchResponse) => r.route.stages.map((s) => s.endLayer - s.startLayer).join(',');

/**
 * How long a split warms up at least. Its coordinator was restarted for it: on stories260K, whose runs last ~25 ms, the
 * new process's stage read 2.27×, 1.65× and 1.29× its profile in its first three seconds of runs (compiling, its links
 * measured, its neighbours' probes), and a split measured in those seconds took 1.6 ms a token where the nodes' figures,
 * read after, priced 1.05 (the 3-node ring, +54 %).
 */
const SPLIT_WARM_UP_MS = 2000;
/**
 * How long a split warms up at most while a node of its ring is announced busy. The coordinator's restart, measuring
 * its device, makes its idle neighbours' probes read busy (1.5–2×) for a few seconds; the coordinator leaves a busy
 * ring's steps out of its served hops (served-hops.ts), so a split measured then had its hops priced without them
 * (stories260K's 3-node ring: 1.27 ms a token predicted, 2.15 measured).
 */
const SPLIT_QUIET_WAIT_MS = 10_000;

/** Whether every node of the split's ring is announced quiet (the ring unknown yet: no; a node of an earlier version, which does not say: yes). */
function ringQuiet(info: BenchInfo): boolean {
  const ring = new Set(info.route?.stages.map((s) => s.peerId) ?? []);
  return ring.size > 0 && info.members.every((m) => !ring.has(m.peerId) || (m.slowdown ?? 1) <= 1);
}

/**
 * Warms the split up (which also has every stage load its layers) until the coordinator runs it, for SPLIT_WARM_UP_MS
 * at least and then until its ring is announced quiet (at most SPLIT_QUIET_WAIT_MS more).
 */
async function warmUp(client: BenchClient, split: number[], p: number, g: number, progress: BenchProgress, checkAlive: () => void): Promise<void> {
  const label = split.join(',');
  progress.status(`split ${label}: warm-up`);
  const until = performance.now() + SPLIT_WARM_UP_MS;
  // A node busy loading can miss heartbeats and be dropped for a moment, and the coordinator then serves on fewer
  // nodes: warm up again until the route is the asked split.
  for (let attempt = 1; ; attempt++) {
    const warm = await client.run(p, g, 1);
    checkAlive();
    const ran = routeOf(warm);
    if (split.length === 0 || ran === label) break;
    if (attempt >= WARMUP_ATTEMPTS) {
      throw new BenchClusterError(`split ${label}: the coordinator still ran ${ran} after ${attempt} warm-ups (a node left while loading its layers? see the node logs)`);
    }
    progress.status(`split ${label}: the warm-up ran on ${ran} (a node was briefly lost); again`);
    await client.waitForMembers(split.length, 60_000, checkAlive);
  }
  while (performance.now() < until) {
    await client.run(p, g, 1);
    checkAlive();
  }
  const quietBy = performance.now() + SPLIT_QUIET_WAIT_MS;
  while (!ringQuiet(await client.info()) && performance.now() < quietBy) {
    progress.status(`split ${label}: warm-up until its nodes are announced quiet`);
    await client.run(p, g, 1);
    checkAlive();
  }
  progress.tick(`split ${label}: warm-up done`);
}

/** One batch of `c` simultaneous bench requests, again while a node lost mid-way made it run on fewer nodes. */
async function runBatch(client: BenchClient, split: number[], c: number, p: number, g: number, progress: BenchProgress, checkAlive: () => void, shape: BenchRequestShape = {}): Promise<BenchResponse[]> {
  const label = split.join(',');
  for (let attempt = 1; ; attempt++) {
    const batch = await Promise.all(Array.from({ length: c }, (_, i) => client.run(p, g, 1, 1 + i, shape)));
    checkAlive();
    const ran = batch.map(routeOf).find((x) => x !== label);
    if (split.length === 0 || ran === undefined) return batch;
    // A run that lost a node mid-way was replayed on fewer nodes: it does not measure this split.
    if (attempt >= WARMUP_ATTEMPTS) throw new BenchClusterError(`split ${label}: runs keep ending on ${ran} (a node keeps leaving; see the node logs)`);
    progress.status(`split ${label}: a run ended on ${ran} (a node was briefly lost); again`);
    await client.waitForMembers(split.length, 60_000, checkAlive);
  }
}

/**
 * The split's decode with speculation off and on at each concurrency: a quoting prompt, one speculating warm-up
 * request (the node times its passes of each size), then `runs` batches of each mode, interleaved so that load hits
 * both alike.
 */
async function measureSpeculation(client: BenchClient, split: number[], o: BenchOptions, progress: BenchProgress, checkAlive: () => void): Promise<SpeculationRow[]> {
  const { promptTokens: p, genTokens: g, runs } = o;
  const label = split.join(',');
  progress.status(`split ${label}: speculation warm-up`);
  await runBatch(client, split, 1, p, g, progress, checkAlive, { ...QUOTING, speculate: true });
  progress.tick(`split ${label}: speculation warm-up done`);
  const rows: SpeculationRow[] = [];
  for (const c of o.concurrency) {
    const off: BenchResponse[][] = [];
    const on: BenchResponse[][] = [];
    for (let r = 0; r < runs; r++) {
      progress.status(`split ${label}: ${c} in flight, speculation off / on, run ${r + 1}/${runs}`);
      off.push(await runBatch(client, split, c, p, g, progress, checkAlive, { ...QUOTING, speculate: false }));
      on.push(await runBatch(client, split, c, p, g, progress, checkAlive, { ...QUOTING, speculate: true }));
      progress.tick(`split ${label}: ${c} in flight, speculation off / on, run ${r + 1}/${runs}`);
    }
    rows.push(speculationRow(off, on));
  }
  return rows;
}

/** The most batches a split's concurrency takes, however short. */
const MAX_BATCHES = 200;

/**
 * Runs `runs` batches of `c` simultaneous bench requests for each concurrency after one warm-up request, and more
 * until they have lasted MIN_MEASURE_MS (at most MAX_BATCHES).
 */
async function measureSplit(client: BenchClient, split: number[], o: BenchOptions, progress: BenchProgress, checkAlive: () => void): Promise<Map<number, BenchResponse[][]>> {
  const { promptTokens: p, genTokens: g, runs } = o;
  const label = split.join(',');
  await warmUp(client, split, p, g, progress, checkAlive);
  const out = new Map<number, BenchResponse[][]>();
  for (const c of o.concurrency) {
    const batches: BenchResponse[][] = [];
    const until = performance.now() + MIN_MEASURE_MS;
    for (let r = 0; r < runs; r++) {
      progress.status(`split ${label}: ${c} in flight, run ${r + 1}/${runs}`);
      batches.push(await runBatch(client, split, c, p, g, progress, checkAlive));
      progress.tick(`split ${label}: ${c} in flight, run ${r + 1}/${runs}`);
    }
    while (performance.now() < until && batches.length < MAX_BATCHES) {
      progress.status(`split ${label}: ${c} in flight, run ${batches.length + 1} (short runs: repeated for ${MIN_MEASURE_MS / 1000} s)`);
      batches.push(await runBatch(client, split, c, p, g, progress, checkAlive));
    }
    out.set(c, batches);
  }
  return out;
}

/** How long a split's prediction waits for its nodes' link measurements (a pair's takes ~1.5 s after it meets). */
const LINKS_WAIT_MS = 10_000;

/**
 * A node's device watch announces its figures (its calibration among them) at most once a second: read right after
 * the runs, a split's prediction took a calibration the runs had already moved
 * (stories260K's whole-model row: 0.09 ms of kernels predicted for 0.40 measured, +115 %).
 */
const FIGURES_SETTLE_MS = 1500;

/**
 * The cluster as the coordinator sees it, once the nodes have announced what the runs measured (FIGURES_SETTLE_MS)
 * and every pair of its devices has a measured link (or after LINKS_WAIT_MS): a coordinator started for the split
 * has measured none in its first second, and an unmeasured link is priced at the partitioner's default (1 ms a hop,
 * where loopback takes ~0.6 ms with the codec and a wake-up).
 */
async function infoWithLinks(client: BenchClient, progress: BenchProgress, label: string): Promise<BenchInfo> {
  progress.status(`split ${label}: waiting for the nodes' figures`);
  await new Promise((r) => setTimeout(r, FIGURES_SETTLE_MS));
  return measuredLinks(client, progress, label);
}

/**
 * The cluster once every pair of its devices has a measured link (or after LINKS_WAIT_MS). Also waited for before a
 * split's runs: the coordinator reads its served hops against its links (served-hops.ts), and a link's pings and
 * 1 MB probes would otherwise run among the measured steps.
 */
async function measuredLinks(client: BenchClient, progress: BenchProgress, label: string): Promise<BenchInfo> {
  const until = Date.now() + LINKS_WAIT_MS;
  for (;;) {
    const info = await client.info();
    if (Date.now() >= until || allLinksMeasured(info.cluster)) return info;
    progress.status(`split ${label}: waiting for the nodes' link measurements`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function allLinksMeasured(cluster: Cluster): boolean {
  const ids = cluster.devices.map((d) => d.id);
  const measured = new Set(cluster.links.map((l) => `${l.from} ${l.to}`));
  return ids.every((a, i) => ids.slice(i + 1).every((b) => measured.has(`${a} ${b}`) || measured.has(`${b} ${a}`)));
}

function rowsOf(split: number[], measured: Map<number, BenchResponse[][]>, info: BenchInfo, p: number, g: number): BenchRow[] {
  const rows: BenchRow[] = [];
  let alone: number[] | undefined;
  for (const [c, batches] of measured) {
    const actual = batches[0][0].route.stages.map((s) => s.endLayer - s.startLayer);
    if (actual.join(',') !== split.join(',')) throw new Error(`asked for split ${split.join(',')} but the cluster ran ${actual.join(',')}`);
    let prediction: BenchRow['predicted'] = null;
    let note: string | undefined;
    try {
      prediction = predictSplit(info.modelShape, info.cluster, split, p, g, c);
    } catch (err) {
      note = `no prediction: ${(err as Error).message}`;
    }
    const row = pipelineRow({ split, concurrency: c, batches, ...(c > 1 && alone ? { transferAlone: alone } : {}) }, info.cluster, prediction);
    if (note) row.note = note;
    if (c === 1) alone = row.hops.map((h) => h.transferMs);
    rows.push(row);
  }
  return rows;
}

function tallyPrefix(prefix: SplitMeasurements['prefix'], measured: Map<number, BenchResponse[][]>): void {
  for (const batches of measured.values()) {
    for (const run of batches.flat().flatMap((b) => b.runs)) {
      prefix.promptTokens += run.promptTokens;
      prefix.cachedTokens += run.cachedTokens ?? 0;
    }
  }
}

/** --api: the split a running cluster serves now, then the baselines. */
export async function measureApi(client: BenchClient, o: BenchOptions, baselineSteps: number, baselines: BaselineRunner): Promise<SplitMeasurements> {
  const prefix = { promptTokens: 0, cachedTokens: 0 };
  const progress = new BenchProgress(stepsPerSplit(o) + baselineSteps);
  const measured = await measureSplit(client, [], o, progress, () => {});
  const speculation = o.speculation ? await measureSpeculation(client, [], o, progress, () => {}) : [];
  tallyPrefix(prefix, measured);
  const info = await client.info();
  const first = [...measured.values()][0][0][0];
  const split = first.route.stages.map((s) => s.endLayer - s.startLayer);
  // The prediction puts the coordinator first: true when it is stage 0, as with `edge-node start --split`.
  const rows = rowsOf(split, measured, info, o.promptTokens, o.genTokens);
  rows.push(...(await baselines(info, progress)));
  progress.finish();
  return { rows, info, prefix, lastClient: client, speculation };
}

/** --nodes N: starts the local nodes, measures every split on them, stops them, then the baselines. */
export async function measureNodes(modelPath: string, layers: number, o: BenchOptions, baselineSteps: number, baselines: BaselineRunner): Promise<SplitMeasurements> {
  const { promptTokens: p, genTokens: g } = o;
  const progress0 = new BenchProgress(1);
  progress0.status(`starting ${o.nodes} node(s)`);
  const cluster = await LocalCluster.start({
    nodes: o.nodes,
    modelPath,
    split: o.spec.kind === 'given' ? o.spec.splits[0] : [layers],
    contextLength: p + g + 8,
    concurrency: Math.max(...o.concurrency),
    engine: o.engine,
    prefixCache: o.prefixCache,
    ...(o.logDir ? { logDir: o.logDir } : {}),
  });
  const rows: BenchRow[] = [];
  const speculation: SpeculationRow[] = [];
  const prefix = { promptTokens: 0, cachedTokens: 0 };
  let ok = false;
  try {
    let info = await cluster.client.info();
    const cl: Cluster = info.cluster;
    const splits = resolveSplits(o.spec, layers, o.nodes, () => autoSplits(info.modelShape, cl, { promptTokens: p, genTokens: g, concurrency: 1 }, o.strategy));
    const progress = new BenchProgress(splits.length * stepsPerSplit(o) + baselineSteps);
    // The cluster as seen after a split that ran every layer on the coordinator: its calibration is of the whole
    // model on that device, which the one-device baseline is predicted from. A calibration learned on a few layers
    // also holds a step's fixed cost (a stage idles between tokens, and its first kernels run on cold caches), which
    // scaled up to every layer over-predicts one device by ~2× on the demo model.
    let whole: BenchInfo | null = null;
    for (const split of splits) {
      progress.status(`split ${split.join(',')}: (re)starting the coordinator`);
      await cluster.setSplit(split);
      await measuredLinks(cluster.client, progress, split.join(','));
      const measured = await measureSplit(cluster.client, split, o, progress, () => cluster.checkAlive());
      tallyPrefix(prefix, measured);
      if (o.speculation) speculation.push(...(await measureSpeculation(cluster.client, split, o, progress, () => cluster.checkAlive())));
      // Profiles and links as the nodes measure them now (links are re-measured every 15 s).
      info = await infoWithLinks(cluster.client, progress, split.join(','));
      if (split.length === 1) whole = info;
      rows.push(...rowsOf(split, measured, info, p, g));
    }
    ok = true;
    await cluster.stop();
    rows.push(...(await baselines(whole ?? info, progress)));
    progress.finish();
    return { rows, info, prefix, lastClient: splits.length > 0 ? cluster.client : null, speculation };
  } finally {
    if (!ok) {
      await cluster.stop(true);
      process.stderr.write(`\nnode logs: ${cluster.logDir}\n`);
    }
  }
}
