import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import { createRequestSampler } from './request-sampler.js';
import type { Sampler } from './sampler.js';
import type { ExecutionRequest, TokenExecutor } from './token-executor.js';
import { ShardInputError, type ForwardShard, type ShardKvCache } from './forward-shard.js';

interface Session {
  cache: ShardKvCache;
  sampler: Sampler;
  request: ExecutionRequest;
}

/** The whole model on this device: one shard holding every layer, plus the sampler. */
export class LocalExecutor implements TokenExecutor {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly shard: ForwardShard,
    /** The tokenizer's byte strings, for requests with a grammar (built on first use). */
    private readonly vocabulary: () => TokenVocabulary = () => {
      throw new ShardInputError('this executor has no vocabulary for constrained sampling');
    },
  ) {
    if (!shard.isFirst || !shard.isLast) throw new ShardInputError('a local executor needs a shard with every layer');
  }

  async begin(request: ExecutionRequest): Promise<number> {
    if (this.sessions.has(request.id)) throw new ShardInputError(`request ${request.id} is already running`);
    const cache = this.shard.createCache(request.contextLength);
    const sampler = createRequestSampler(request, this.vocabulary);
    const session = { cache, sampler, request };
    this.sessions.set(request.id, session);
    try {
      const out = this.shard.forward({ kind: 'tokens', tokens: request.promptTokens }, cache);
      if (out.kind !== 'logits') throw new ShardInputError('the last stage did not produce logits');
      return this.sample(session, out.logits);
    } catch (err) {
      await this.end(request.id);
      throw err;
    }
  }

  async step(requestId: string, token: number): Promise<number> {
    const session = this.sessions.get(requestId);
    if (!session) throw new ShardInputError(`request ${requestId} is not running`);
    const out = this.shard.forward({ kind: 'tokens', tokens: [token] }, session.cache);
    if (out.kind !== 'logits') throw new ShardInputError('the last stage did not produce logits');
    return this.sample(session, out.logits);
  }

  private sample(s: Session, logits: Float32Array): number {
    const token = s.sampler.sample(logits, s.request.contextLength - s.cache.length);
    if (s.sampler.lastLogprob) s.request.onLogprob?.(s.sampler.lastLogprob);
    return token;
  }

  async end(requestId: string): Promise<void> {
    const session = this.sessions.get(requestId);
    if (!session) return;
    session.cache.clear();
    this.sessions.delete(requestId);
  }

  /** Requests currently holding a KV cache here. */
  get activeRequests(): number {
    return this.sessions.size;
  }
}
