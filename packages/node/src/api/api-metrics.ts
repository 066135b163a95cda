import type { StepTiming } from '../engine/bench-probe.js';
import type { MigrationEvent, RecoveryEvent } from '../pipeline/route-change-events.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PrefixCacheReport } from '../engine/prefix-cache.js';
import type { SpeculationReport } from '../engine/speculation.js';
import { TokenRate } from './token-rate.js';

/** Live numbers this node reads when /metrics or /v1/cluster is asked. */
export interface MetricSources {
  peers: () => number;
  kvSessions: () => number;
  kvCacheBytes: () => number;
  running: () => number;
  waiting: () => number;
  /** Requests this node runs at once (its slots, `--parallel`). */
  slots: () => number;
  /** Display name of a peer id (for per-stage labels). */
  nodeName: (peerId: string) => string;
  /** The prefix cache, when the generator has one. */
  prefixCache?: () => PrefixCacheReport | null;
  /** Speculative decoding of the requests this node coordinated, when the generator speculates. */
  speculation?: () => SpeculationReport | null;
}

/** What /v1/cluster reports about serving on this node. */
export interface ServingStats {
  /** Tokens generated per second by requests this node coordinates, over the last few seconds. */
  tokensPerSecond: number;
  /** Requests this node runs at once; `running` of them are in use. */
  slots: number;
  running: number;
  waiting: number;
  /** Requests whose KV cache lives on this node (as a stage of any coordinator). */
  kvSessions: number;
  kvCacheBytes: number;
  requestsTotal: number;
  completionTokensTotal: number;
  /** This node's stage steps: how many, the most requests one step computed together, and the mean rows per step. */
  batching: { steps: number; maxRequests: number; meanRows: number };
  /** Blocks this node's stage keeps across requests, and what this node's requests took from the stages' caches. */
  prefixCache: PrefixCacheReport | null;
  /** Drafted and accepted tokens and pipeline walks of this node's requests, with tokens per walk. */
  speculation: (SpeculationReport & { tokensPerWalk: number; acceptance: number }) | null;
}

/** A counter that also keeps its total, for /v1/cluster (prom-client reads values asynchronously). */
class TalliedCounter<L extends string> {
  total = 0;
  constructor(readonly metric: Counter<L>) {}

  inc(labels: Partial<Record<L, string>> = {}, value = 1): void {
    this.metric.inc(labels, value);
    this.total += value;
  }
}

const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const RATE_WINDOW_MS = 5000;

/**
 * The node's serving metrics, rendered as Prometheus text at /metrics: HTTP requests, tokens, TTFT and per-token
 * latency, per-stage compute and per-hop network time of each pipeline step, KV sessions, queue and peers.
 */
export class ApiMetrics {
  /** Every metric of this node (its own registry: several nodes may share a process in tests). */
  readonly registry = new Registry();
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly generations: TalliedCounter<'endpoint' | 'finish'>;
  readonly promptTokens: Counter;
  readonly completionTokens: TalliedCounter<never>;
  readonly ttft: Histogram;
  readonly tokenLatency: Histogram;
  readonly stageCompute: Histogram<'stage' | 'node'>;
  readonly hopTime: Histogram;
  readonly recoveries: Counter<'outcome'>;
  readonly recoveryReplayedTokens: Counter;
  readonly recoveryTime: Histogram;
  readonly moves: Counter<'kind'>;
  readonly movedKvBytes: Counter;
  readonly moveTime: Histogram<'kind'>;
  readonly batchRequests: Histogram;
  readonly batchRows: Histogram;
  /** Steps, rows and the largest batch so far, for /v1/cluster (prom-client reads its values asynchronously). */
  private batching = { steps: 0, rows: 0, maxRequests: 0 };
  private sources: MetricSources | null = null;
  private readonly recentTokens = new TokenRate(RATE_WINDOW_MS);

  constructor() {
    const registers = [this.registry];
    const histogram = <L extends string>(name: string, help: string, labelNames: L[] = []) => new Histogram<L>({ name, help, labelNames, buckets: LATENCY_BUCKETS_S, registers });
    this.httpRequests = new Counter({ name: 'edge_node_http_requests_total', help: 'HTTP requests answered, by route and status.', labelNames: ['route', 'status'], registers });
    this.generations = new TalliedCounter(
      new Counter({ name: 'edge_node_generations_total', help: 'Generations ended, by endpoint and how they ended (stop, length, cancelled, error).', labelNames: ['endpoint', 'finish'], registers }),
    );
    this.promptTokens = new Counter({ name: 'edge_node_prompt_tokens_total', help: 'Prompt tokens processed for requests this node coordinated.', registers });
    this.completionTokens = new TalliedCounter(new Counter({ name: 'edge_node_completion_tokens_total', help: 'Tokens generated for requests this node coordinated.', registers }));
    this.ttft = histogram('edge_node_time_to_first_token_seconds', 'Request arrival (including queueing) to the first generated token.');
    this.tokenLatency = histogram('edge_node_token_latency_seconds', 'Time per generated token after the first (one decode step through the ring; a verification step counts each of its tokens at its share).');
    this.stageCompute = histogram('edge_node_stage_compute_seconds', 'Compute time of each pipeline stage per step, by stage index and node.', ['stage', 'node']);
    this.hopTime = histogram('edge_node_hop_seconds', 'Per-hop time of a pipeline step: the step round trip minus all stage compute, divided by the hops of the ring (a verification sent in parts, whose stages overlap, gives none).');
    this.recoveries = new Counter({ name: 'edge_node_recoveries_total', help: 'Requests this node coordinates that lost a stage node and were re-planned and replayed, by outcome.', labelNames: ['outcome'], registers });
    this.recoveryReplayedTokens = new Counter({ name: 'edge_node_recovery_replayed_tokens_total', help: 'Tokens replayed through new routes to rebuild KV caches after a stage node was lost.', registers });
    this.recoveryTime = histogram('edge_node_recovery_seconds', 'From noticing a lost stage to the first token of the replayed request.');
    this.moves = new Counter({ name: 'edge_node_moves_total', help: 'Running requests moved to a newer plan at a token boundary: live (with their KV cache) or replayed (a prefill of their history).', labelNames: ['kind'], registers });
    this.movedKvBytes = new Counter({ name: 'edge_node_moved_kv_bytes_total', help: 'KV cache bytes the stages of new routes copied for requests moved live.', registers });
    this.moveTime = histogram('edge_node_move_seconds', 'A move: from the switch (live) or the decision (replayed) to the first token on the new route.', ['kind']);
    this.batchRequests = new Histogram({ name: 'edge_node_stage_batch_requests', help: "Requests computed together in one step of this node's stage (continuous batching).", buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32, 64], registers });
    this.batchRows = new Histogram({ name: 'edge_node_stage_batch_rows', help: "Rows (decode tokens and prompt positions) computed in one step of this node's stage.", buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers });
    // Both outcomes are listed from the start, so a dashboard sees 0 rather than no series.
    this.recoveries.inc({ outcome: 'recovered' }, 0);
    this.recoveries.inc({ outcome: 'failed' }, 0);
    this.moves.inc({ kind: 'live' }, 0);
    this.moves.inc({ kind: 'replayed' }, 0);
    // The process's own numbers under their usual names (process_resident_memory_bytes, nodejs_heap_size_used_bytes,
    // nodejs_external_memory_bytes, event-loop lag, GC): what tells a slow or growing node apart.
    collectDefaultMetrics({ register: this.registry });
    const src = () => this.sources;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('edge_node_peers', 'Cluster peers this node sees (not counting itself).', () => src()?.peers() ?? 0);
    gauge('edge_node_requests_running', 'Requests this node coordinates that are in the pipeline now.', () => src()?.running() ?? 0);
    gauge('edge_node_slots', 'Requests this node runs at once (--parallel); more wait in the queue.', () => src()?.slots() ?? 0);
    gauge('edge_node_requests_waiting', "Requests waiting in this node's queue.", () => src()?.waiting() ?? 0);
    gauge('edge_node_kv_sessions', 'Requests holding a KV cache on this node (as a stage, for any coordinator).', () => src()?.kvSessions() ?? 0);
    gauge('edge_node_kv_cache_bytes', 'Bytes held by the KV caches on this node.', () => src()?.kvCacheBytes() ?? 0);
    const pc = () => src()?.prefixCache?.() ?? null;
    gauge('edge_node_prefix_cache_bytes', "Bytes of KV blocks this node's stage keeps across requests (--prefix-cache).", () => pc()?.stage.bytes ?? 0);
    gauge('edge_node_prefix_cache_budget_bytes', "The most bytes of KV blocks this node's stage keeps (--prefix-cache).", () => pc()?.stage.budgetBytes ?? 0);
    gauge('edge_node_prefix_cache_blocks', "16-token KV blocks this node's stage keeps.", () => pc()?.stage.blocks ?? 0);
    gauge('edge_node_prefix_cache_stage_hits', "Requests whose first positions this node's stage copied from its prefix cache (since start).", () => pc()?.stage.hits ?? 0);
    gauge('edge_node_prefix_cache_stage_misses', "Requests that asked this node's stage for cached positions it had evicted (since start).", () => pc()?.stage.misses ?? 0);
    gauge('edge_node_prefix_cache_evicted_blocks', "Blocks this node's stage evicted, least recently used first, to stay in its budget (since start).", () => pc()?.stage.evictedBlocks ?? 0);
    gauge('edge_node_prefix_cache_hits', 'Requests this node coordinated that opened after a cached prefix (since start).', () => pc()?.requests.hits ?? 0);
    gauge('edge_node_prefix_cache_cached_tokens', 'Prompt tokens of requests this node coordinated that the stages took from their prefix caches (since start).', () => pc()?.requests.cachedTokens ?? 0);
    gauge('edge_node_prefix_cache_refusals', 'Requests this node coordinated whose cached prefix a stage had evicted: prefilled in full instead (since start).', () => pc()?.requests.refusals ?? 0);
    // Totals the generator keeps, exposed as counters: each scrape adds what was added since the last one.
    const counter = (name: string, help: string, read: () => number) => {
      let seen = 0;
      return new Counter({
        name,
        help,
        registers,
        collect() {
          const now = read();
          if (now > seen) this.inc(now - seen);
          seen = Math.max(seen, now);
        },
      });
    };
    const sp = () => src()?.speculation?.() ?? null;
    counter('edge_node_speculation_drafted_tokens_total', 'Tokens drafted (prompt lookup) and verified for requests this node coordinated.', () => sp()?.drafted ?? 0);
    counter('edge_node_speculation_accepted_tokens_total', 'Drafted tokens the model agreed with (each saved a walk through the pipeline).', () => sp()?.accepted ?? 0);
    counter('edge_node_speculation_walks_total', 'Decode passes through the pipeline of speculating requests (plain steps and verifications).', () => sp()?.walks ?? 0);
    counter('edge_node_speculation_walk_tokens_total', 'Tokens those passes returned (divided by the walks: tokens per walk).', () => sp()?.tokens ?? 0);
    gauge('edge_node_speculation_draft_length', 'Draft length k chosen last for a speculating request (0: plain steps won), from the measured acceptance, pass times and draft time per token.', () => sp()?.draftLength ?? 0);
    gauge('edge_node_speculation_draft_seconds_per_token', "The drafter's measured time per drafted token (the draft model's forward steps, with --draft-model).", () => (sp()?.draftMsPerToken ?? 0) / 1000);
    gauge('edge_node_tokens_per_second', `Tokens generated per second over the last ${RATE_WINDOW_MS / 1000} s (requests this node coordinates).`, () => this.tokensPerSecond());
  }

  attach(sources: MetricSources): void {
    this.sources = sources;
  }

  /** One pipeline step of a request this node coordinates; `hops` = network hops around the ring. */
  observeStep(timing: StepTiming, route: { peers: readonly string[] } | undefined, hops: number): void {
    const now = performance.now();
    // A verification step returns several tokens: each counts, at its share of the walk.
    const tokens = timing.tokens ?? 1;
    this.recentTokens.add(now, tokens);
    if (timing.step > 0) for (let i = 0; i < tokens; i++) this.tokenLatency.observe(timing.roundTripMs / tokens / 1000);
    let compute = 0;
    timing.stageMs.forEach((ms, i) => {
      compute += ms;
      const peer = route?.peers[i];
      this.stageCompute.observe({ stage: String(i), node: peer ? (this.sources?.nodeName(peer) ?? peer.slice(-8)) : 'unknown' }, ms / 1000);
    });
    // A verification in parts overlapped its stages: its round trip less their compute is no hop's time.
    if (hops > 0 && timing.stageMs.length > 0 && (timing.parts ?? 1) === 1) this.hopTime.observe(Math.max(0, timing.roundTripMs - compute) / hops / 1000);
  }

  /** One batched step of this node's stage. */
  observeBatch(rows: number, requests: number): void {
    this.batchRows.observe(rows);
    this.batchRequests.observe(requests);
    this.batching.steps++;
    this.batching.rows += rows;
    this.batching.maxRequests = Math.max(this.batching.maxRequests, requests);
  }

  /** A request survived the loss of a stage node. */
  observeRecovery(event: RecoveryEvent): void {
    this.recoveries.inc({ outcome: 'recovered' });
    this.recoveryReplayedTokens.inc(event.replayedTokens);
    this.recoveryTime.observe(event.recoveryMs / 1000);
  }

  /** A running request moved to a newer plan. */
  observeMove(event: MigrationEvent): void {
    const kind = event.replayedTokens > 0 ? 'replayed' : 'live';
    this.moves.inc({ kind });
    this.movedKvBytes.inc(event.copiedBytes);
    this.moveTime.observe({ kind }, event.ms / 1000);
  }

  /** A request lost a stage node and could not be carried on (e.g. the remaining nodes cannot hold the model). */
  observeRecoveryFailure(): void {
    this.recoveries.inc({ outcome: 'failed' });
  }

  tokensPerSecond(): number {
    return this.recentTokens.perSecond(performance.now());
  }

  serving(): ServingStats {
    const s = this.sources;
    const requests = this.generations.total;
    return {
      tokensPerSecond: this.tokensPerSecond(),
      slots: s?.slots() ?? 0,
      running: s?.running() ?? 0,
      waiting: s?.waiting() ?? 0,
      kvSessions: s?.kvSessions() ?? 0,
      kvCacheBytes: s?.kvCacheBytes() ?? 0,
      requestsTotal: requests,
      completionTokensTotal: this.completionTokens.total,
      batching: {
        steps: this.batching.steps,
        maxRequests: this.batching.maxRequests,
        meanRows: this.batching.steps > 0 ? Math.round((this.batching.rows / this.batching.steps) * 100) / 100 : 0,
      },
      prefixCache: s?.prefixCache?.() ?? null,
      speculation: speculationStats(s?.speculation?.() ?? null),
    };
  }

  /** Prometheus text exposition of every metric (prom-client). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function speculationStats(r: SpeculationReport | null): ServingStats['speculation'] {
  if (!r) return null;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return { ...r, rowCost: round(r.rowCost), draftMsPerToken: round(r.draftMsPerToken), tokensPerWalk: r.walks > 0 ? round(r.tokens / r.walks) : 0, acceptance: r.drafted > 0 ? round(r.accepted / r.drafted) : 0 };
}
