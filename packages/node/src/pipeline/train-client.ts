import type { LayerRange } from '../engine/layer-range.js';
import { LORA_PROJECTIONS } from '../model/lora-adapter.js';
import type { EdgeHost } from '../network/edge-host.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RemoteRequestError, RequestChannel, type ChannelEnvelope } from '../network/request-channel.js';
import type { StageJobParams } from '../training/stage-training-job.js';
import type { TrainerState } from '../training/layer-range-trainer.js';
import type { LayerLora } from '../training/lora-set.js';
import type { TrainingStage } from '../training/training-stage.js';
import type { TrainReply, TrainRequest } from './train-frames.js';

type TrainEnvelope = ChannelEnvelope<TrainRequest, TrainReply, never>;

/** How long a stage may take to read its layers for a job, and to answer one op (a forward or backward of a sequence). */
const OPEN_TIMEOUT_MS = 300_000;
const OP_TIMEOUT_MS = 120_000;

/** A stage refused an op (a bad frame, a job it does not hold): its reason, naming the stage. */
export class TrainingStageError extends Error {
  override name = 'TrainingStageError';
}

/** A stage went away mid-job (its stream closed, or it stopped answering): the job cannot go on without its layers. */
export class TrainingStageLostError extends Error {
  override name = 'TrainingStageLostError';
  constructor(
    readonly peerId: string,
    message: string,
  ) {
    super(message);
  }
}

/** Another node's layer range as a TrainingStage of this owner's job, over `/edge-node/train/1.0.0`. */
export class RemoteTrainingStage implements TrainingStage {
  private constructor(
    readonly name: string,
    readonly startLayer: number,
    readonly endLayer: number,
    private readonly job: string,
    private readonly peerId: string,
    private readonly channel: RequestChannel<TrainRequest, TrainReply, never>,
    private readonly shape: { rank: number; dims: { inDim: number; outDim: number }[] },
  ) {}

  /** Opens the job on the peer: it reads its layers and makes its slice of the adapter. */
  static async open(
    host: EdgeHost,
    peer: { peerId: string; name: string },
    range: LayerRange,
    job: string,
    model: string,
    p: StageJobParams,
    dims: { inDim: number; outDim: number }[],
    resume?: TrainerState,
  ): Promise<RemoteTrainingStage> {
    const label = `${peer.name} (layers [${range.startLayer}, ${range.endLayer}))`;
    let stream;
    try {
      stream = await host.openMessageStream<TrainEnvelope, TrainEnvelope>(peer.peerId, PROTOCOLS.train);
    } catch (err) {
      throw new TrainingStageLostError(peer.peerId, `stage ${label} cannot be reached for training: ${(err as Error).message}`);
    }
    const channel = new RequestChannel<TrainRequest, TrainReply, never>(stream, { timeoutMs: OP_TIMEOUT_MS });
    const stage = new RemoteTrainingStage(label, range.startLayer, range.endLayer, job, peer.peerId, channel, { rank: p.rank, dims });
    try {
      await stage.ask({ op: 'open', job, model, startLayer: range.startLayer, endLayer: range.endLayer, ...p, ...(resume ? { resume } : {}) }, OPEN_TIMEOUT_MS);
    } catch (err) {
      await channel.close().catch(() => {});
      throw err;
    }
    return stage;
  }

  async forward(mb: number, x: Float32Array, rows: number): Promise<Float32Array> {
    return floats((await this.ask({ op: 'forward', job: this.job, mb, rows, x })) as { y?: unknown }, 'y', x.length, this.name);
  }

  async backward(mb: number, grad: Float32Array): Promise<Float32Array> {
    return floats((await this.ask({ op: 'backward', job: this.job, mb, grad })) as { grad?: unknown }, 'grad', grad.length, this.name);
  }

  async gradSquareSum(start: number): Promise<number> {
    const sum = ((await this.ask({ op: 'grad-norm', job: this.job, start })) as { sum?: unknown }).sum;
    if (typeof sum !== 'number') throw new TrainingStageError(`stage ${this.name} answered grad-norm without a number`);
    return sum;
  }

  async step(clipScale: number | null): Promise<void> {
    await this.ask({ op: 'step', job: this.job, clipScale });
  }

  async exportSlice(): Promise<LayerLora[]> {
    const arrays = ((await this.ask({ op: 'export', job: this.job })) as { arrays?: unknown }).arrays;
    const { rank, dims } = this.shape;
    const per = LORA_PROJECTIONS.length * 2;
    const layers = this.endLayer - this.startLayer;
    if (!Array.isArray(arrays) || arrays.length !== layers * per) throw new TrainingStageError(`stage ${this.name} exported ${Array.isArray(arrays) ? arrays.length : 'no'} arrays, expected ${layers * per}`);
    return Array.from({ length: layers }, (_, l) =>
      Object.fromEntries(
        LORA_PROJECTIONS.map((t, i) => {
          const { inDim, outDim } = dims[i];
          const a = floats({ v: arrays[l * per + 2 * i] }, 'v', rank * inDim, this.name);
          const b = floats({ v: arrays[l * per + 2 * i + 1] }, 'v', outDim * rank, this.name);
          return [t, { a, b, rank, inDim, outDim, scale: 0 }];
        }),
      ) as LayerLora,
    );
  }

  async exportState(): Promise<TrainerState> {
    const r = (await this.ask({ op: 'export-state', job: this.job })) as Partial<TrainerState>;
    const sizes = Array.from({ length: this.endLayer - this.startLayer }, () => this.shape.dims.flatMap((d) => [this.shape.rank * d.inDim, d.outDim * this.shape.rank])).flat();
    const list = (xs: unknown) => {
      if (!Array.isArray(xs) || xs.length !== sizes.length) throw new TrainingStageError(`stage ${this.name} exported a state of the wrong shape`);
      return xs.map((x: unknown, i) => floats({ x }, 'x', sizes[i], this.name));
    };
    if (typeof r.t !== 'number') throw new TrainingStageError(`stage ${this.name} exported a state without its step count`);
    return { t: r.t, params: list(r.params), m: list(r.m), v: list(r.v) };
  }

  async close(): Promise<void> {
    await this.ask({ op: 'close', job: this.job }, 5_000).catch(() => {});
    await this.channel.close().catch(() => {});
  }

  private async ask(req: TrainRequest, timeoutMs?: number): Promise<TrainReply> {
    try {
      return await this.channel.request(req, timeoutMs === undefined ? {} : { timeoutMs });
    } catch (err) {
      if (err instanceof RemoteRequestError) throw new TrainingStageError(`stage ${this.name} refused ${req.op}: ${err.message}`);
      throw new TrainingStageLostError(this.peerId, `stage ${this.name} was lost mid-job (${req.op}): ${(err as Error).message}`);
    }
  }
}

function floats(reply: Record<string, unknown>, key: string, n: number, stage: string): Float32Array {
  const v = reply[key];
  if (!(v instanceof Float32Array) || v.length !== n) throw new TrainingStageError(`stage ${stage} answered without ${n} floats`);
  return v;
}
