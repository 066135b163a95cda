import { ComputeSlices } from '../engine/compute-slices.js';
import type { ModelFile } from '../model/model-file.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RequestChannel, type ChannelEnvelope } from '../network/request-channel.js';
import { openStageTrainingJob, type StageTrainingJob } from '../training/stage-training-job.js';
import { loraParameterCount } from '../training/train-step.js';
import { MAX_JOBS_PER_OWNER, MAX_MICRO_BATCHES_IN_FLIGHT, parseTrainRequest, sliceArrays, TrainFrameError, type TrainFrameLimits, type TrainReply, type TrainRequest } from './train-frames.js';

type TrainEnvelope = ChannelEnvelope<unknown, TrainReply, never>;

export interface TrainServerOptions {
  host: EdgeHost;
  model: ModelFile;
  /** The model's fingerprint: a job for another model is refused. */
  fingerprint: string;
  limits: TrainFrameLimits;
  /** Kernel threads of a job's products (the node's --threads). */
  threads: number;
  /** Why this node cannot train (e.g. the tfjs backend), or null. */
  refusal: string | null;
  log: NodeLogger;
}

interface OpenJob {
  job: StageTrainingJob;
  /** Rows of each micro-batch in flight (its gradient must have as many). */
  rows: Map<number, number>;
}

/**
 * This node as a stage of other nodes' fine-tuning jobs (`/edge-node/train/1.0.0`): per owner and job, its layer
 * range's trainer (stage-training-job.ts). Requests of one owner run one at a time, in the order they came; a bad
 * request is answered with its reason; an owner's jobs are closed when its stream closes (the owner stopped or
 * was lost), so nothing is held for a job nobody drives.
 */
export class TrainServer {
  private readonly jobs = new Map<string, OpenJob>();

  constructor(private readonly opts: TrainServerOptions) {}

  async start(): Promise<void> {
    await this.opts.host.handle(PROTOCOLS.train, (stream, info) => {
      const owner = info.remotePeer;
      const mine = new Set<string>();
      let turn: Promise<unknown> = Promise.resolve();
      new RequestChannel<unknown, TrainReply, never>(stream as unknown as MessageStream<TrainEnvelope, TrainEnvelope>, {
        // One at a time in arrival order: the backwards of a job must follow its forwards' order.
        onRequest: (body) => {
          const reply = turn.then(() => this.handle(body, owner, mine));
          turn = reply.catch(() => {});
          return reply;
        },
        onProtocolError: (err) => this.opts.log.warn(`reset train stream from ${owner.slice(-8)}: ${err.message}`),
      });
      stream.onClose(() => {
        for (const key of mine) void this.close(key);
      });
    });
  }

  /** Jobs open here (this node a stage of them). */
  get openJobs(): number {
    return this.jobs.size;
  }

  /** Closes every job (the node stops). */
  async stop(): Promise<void> {
    await Promise.all([...this.jobs.keys()].map((k) => this.close(k)));
  }

  private rowsOf(key: (job: string) => string) {
    return (job: string, mb: number) => this.jobs.get(key(job))?.rows.get(mb) ?? null;
  }

  private async handle(body: unknown, owner: string, mine: Set<string>): Promise<TrainReply> {
    const key = (job: string) => `${owner}/${job}`;
    const req = parseTrainRequest(body, this.opts.limits, this.rowsOf(key));
    if (req.op === 'open') return this.open(req, key(req.job), mine);
    const open = this.jobs.get(key(req.job));
    if (!open) throw new TrainFrameError(`no job ${req.job} is open here for this owner (it was closed, or never opened)`);
    const t = open.job.trainer;
    switch (req.op) {
      case 'forward': {
        if (open.rows.size >= MAX_MICRO_BATCHES_IN_FLIGHT) throw new TrainFrameError(`more than ${MAX_MICRO_BATCHES_IN_FLIGHT} micro-batches in flight`);
        const y = (await t.forwardSliced(req.mb, req.x, req.rows, new ComputeSlices())) as Float32Array;
        open.rows.set(req.mb, req.rows);
        return { y };
      }
      case 'backward': {
        const grad = (await t.backwardSliced(req.mb, req.grad, new ComputeSlices())) as Float32Array;
        open.rows.delete(req.mb);
        return { grad };
      }
      case 'grad-norm':
        return { sum: t.gradSquareSum(req.start) };
      case 'step':
        t.step(req.clipScale);
        return { ok: true };
      case 'export':
        return { arrays: sliceArrays(t.lora) };
      case 'export-state': {
        const st = t.state();
        const f32 = (xs: readonly (Float32Array | Float64Array)[]) => xs.map((x) => Float32Array.from(x));
        return { t: st.t, params: f32(st.params), m: f32(st.m), v: f32(st.v) };
      }
      case 'close':
        mine.delete(key(req.job));
        await this.close(key(req.job));
        return { ok: true };
    }
  }

  private async open(req: Extract<TrainRequest, { op: 'open' }>, key: string, mine: Set<string>): Promise<TrainReply> {
    if (this.opts.refusal !== null) throw new TrainFrameError(this.opts.refusal);
    if (req.model !== this.opts.fingerprint) throw new TrainFrameError(`this node serves another model (${this.opts.fingerprint}, asked for ${req.model})`);
    if (this.jobs.has(key)) throw new TrainFrameError(`job ${req.job} is open here already`);
    if (mine.size >= MAX_JOBS_PER_OWNER) throw new TrainFrameError(`an owner may hold at most ${MAX_JOBS_PER_OWNER} jobs open on a stage`);
    const job = await openStageTrainingJob(this.opts.model, { startLayer: req.startLayer, endLayer: req.endLayer }, req, this.opts.threads, req.resume);
    this.jobs.set(key, { job, rows: new Map() });
    mine.add(key);
    this.opts.log.info(`training: job ${req.job} of ${key.split('/')[0].slice(-8)} opened on layers [${req.startLayer}, ${req.endLayer}) (rank ${req.rank}${req.resume ? `, resumed after step ${req.resume.t}` : ''}); keeps the activations of up to ${req.keep ?? 1} micro-batch(es) at once`);
    return { ok: true, parameters: loraParameterCount({ rank: req.rank, alpha: req.alpha, layers: job.trainer.lora }) };
  }

  private async close(key: string): Promise<void> {
    const open = this.jobs.get(key);
    if (!open) return;
    this.jobs.delete(key);
    await open.job.close().catch(() => {});
  }
}
