import type { Cluster, ModelShape } from '@edge-node/partitioner';
import type { GenerationResult } from './generate.js';
import type { GeneratorOptions } from './generator.js';

/** One step of a request as its coordinator timed it. */
export interface StepTiming {
  step: number;
  /** Coordinator's wall time from sending the step to receiving its token. */
  roundTripMs: number;
  /** Compute ms per stage, in route order. */
  stageMs: number[];
  /**
   * The coordinator's own time before it sent this step: from the previous token's arrival to this step's frame
   * (sampling, streaming the token to the client, its turn on the event loop). 0 for a request's first step.
   */
  coordinatorMs: number;
  /** Tokens the step returned: 1, or after a verification the accepted drafts + 1 (absent: 1). */
  tokens?: number;
  /**
   * Frames a verification went in (absent: 1). With more, a stage computed one part while the next computed the one
   * before: the round trip less the stages' compute is not the hops' time.
   */
  parts?: number;
}

/** A stage of the route a request took: which node held which layers. */
export interface BenchStage {
  peerId: string;
  name: string;
  startLayer: number;
  endLayer: number;
}

export interface BenchRoute {
  planId: string;
  stages: BenchStage[];
}

/** One network (or in-process) leg of a step: coordinator → stage 0 → … → last stage → coordinator. */
export interface BenchHop {
  from: string;
  to: string;
  /** False when both ends are this process (the frame never leaves it). */
  network: boolean;
  /** Encoded bytes of what crosses this hop for the prompt (all chunks) and for one decode step. */
  prefillBytes: number;
  decodeBytes: number;
}

/** What a client needs to predict the generator's figures with the partitioner. */
export interface BenchTopology {
  modelShape: ModelShape;
  coordinator: string;
  /** Members with the model, in ring order (names sorted), as the partitioner sees them, with the slowdown each announces (1: quiet). */
  members: { peerId: string; name: string; slowdown: number }[];
  cluster: Cluster;
  /** The plan in force, if one was made. */
  route: BenchRoute | null;
}

/** One generation with what it did on the way: every step's timing and the route it took. */
export interface BenchTrace {
  result: GenerationResult;
  /** Step 0 is the prefill; then one per decode step. */
  steps: StepTiming[];
  route: BenchRoute;
  /** Encoded bytes of each leg of that route for this run's prompt (computed on demand: it encodes frames). */
  hops(): BenchHop[];
}

/** What `POST /v1/edge-node/bench` drives: a generator's topology, and generations that report their steps. */
export interface BenchProbe {
  topology(): BenchTopology;
  run(opts: GeneratorOptions): Promise<BenchTrace>;
}
