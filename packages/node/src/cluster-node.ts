import type { DeviceProfile } from './cluster/device-profile.js';
import { LinkMonitor, type LinkMonitorOptions } from './cluster/link-monitor.js';
import { Membership, type MembershipOptions } from './cluster/membership.js';
import type { ComputeBackend } from './engine/compute-backend.js';
import type { ModelConfig } from './model/model-config.js';
import type { ModelFile } from './model/model-file.js';
import type { EdgeHost } from './network/edge-host.js';
import { DEFAULT_MAX_FRAME_BYTES } from './network/frame-codec.js';
import type { NodeLogger } from './network/node-logger.js';
import { ActivationRouter } from './pipeline/activation-router.js';
import { ClusterPipeline, type ClusterPipelineOptions } from './pipeline/cluster-pipeline.js';
import { frameLimits } from './pipeline/frame-limits.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

/** A part the composition root starts once and stops once (in the reverse order of the parts it was given). */
export interface Startable {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What a host (a Node process, a browser tab) gives a node of the cluster: the rest is the same on both. */
export interface ClusterNodeComponents {
  /** libp2p as an EdgeHost; started and closed by the host (it decides when to listen and dial). */
  host: EdgeHost;
  /** What computes this node's layers; closed by the host (a draft model may share it). */
  compute: ComputeBackend;
  /** This device as measured, announced to the cluster. */
  profile: DeviceProfile;
  log: NodeLogger;
}

export interface ClusterNodeOptions {
  /** Name in the cluster (the ring is ordered by name). */
  name: string;
  membership?: MembershipOptions;
  linkMonitor?: LinkMonitorOptions;
}

/** What a node serving a model allows: context per request (tokens), requests at once, the largest frame (bytes). */
export interface ServeLimits {
  contextLength: number;
  concurrency: number;
  maxFrameBytes?: number;
}

/** The pipeline's policies and event hooks (metrics listen there); the node supplies its own parts and limits. */
export type ServeSettings = Omit<ClusterPipelineOptions, 'host' | 'router' | 'membership' | 'log' | 'model' | 'tokenizer' | 'compute' | 'contextLength' | 'concurrency' | 'maxFrameBytes'>;

/** Context per request when the node is not told: the model's, at most 4096 tokens. */
export function servedContextLength(config: ModelConfig, asked?: number): number {
  return Math.min(asked ?? 4096, config.contextLength);
}

/**
 * A node of the cluster whichever host runs it: membership (heartbeats, gossip), the link monitor, and — once it
 * has a model — the pipeline (this node's stage and the coordinator of its requests over one ActivationRouter).
 * The Node runtime (node-runtime.ts) and the browser tab (packages/browser) compose it from their host, store,
 * compute and limits.
 */
export class ClusterNode implements Startable {
  readonly membership: Membership;
  readonly links: LinkMonitor;
  private served: ClusterPipeline | null = null;

  constructor(
    private readonly parts: ClusterNodeComponents,
    options: ClusterNodeOptions,
  ) {
    this.membership = new Membership(parts.host, { name: options.name, profile: parts.profile }, parts.log, options.membership);
    this.links = new LinkMonitor(parts.host, this.membership, parts.log, options.linkMonitor);
  }

  /** The pipeline once serve() has built it (before it starts), else null. */
  get pipeline(): ClusterPipeline | null {
    return this.served;
  }

  async start(): Promise<void> {
    await this.membership.start();
    await this.links.start();
  }

  /** Serves `model`: one router for this node's stage and its coordinator (each gets its own frames), the pipeline on it, started. */
  async serve(model: ModelFile, tokenizer: Tokenizer, limits: ServeLimits, settings: ServeSettings = {}): Promise<ClusterPipeline> {
    const { host, log, compute } = this.parts;
    const maxFrameBytes = limits.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const router = new ActivationRouter(host, frameLimits(model.config, maxFrameBytes, limits.contextLength), log);
    const pipeline = new ClusterPipeline({ ...settings, host, router, membership: this.membership, log, model, tokenizer, compute, contextLength: limits.contextLength, concurrency: limits.concurrency, maxFrameBytes });
    this.served = pipeline;
    await pipeline.start();
    return pipeline;
  }

  /** Stops serving, then says goodbye to the peers; the host closes libp2p and the compute after. */
  async stop(): Promise<void> {
    await this.served?.stop();
    this.links.stop();
    await this.membership.stop();
  }
}
