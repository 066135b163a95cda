import { Sampler } from './sampler.js';
import type { ExecutionRequest, TokenExecutor } from './token-executor.js';
import { ShardInputError, type ForwardShard, type ShardKvCache } from './forward-shard.js';

interface Session {
  cache: ShardKvCache;
  sampler: Sampler;
}

/** The whole model on this device: one shard holding every layer, plus the sampler. */
export class LocalExecutor implements TokenExecutor {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly shard: ForwardShard) {
    if (!shard.isFirst || !shard.isLast) throw new ShardInputError('a local executor needs a shard with every layer');
  }

  async begin(request: ExecutionRequest): Promise<number> {
    if (this.sessions.has(request.id)) throw new ShardInputError(`request ${request.id} is already running`);
    const cache = this.shard.createCache(request.contextLength);
    const sampler = new Sampler(request.sampling, request.promptTokens);
    this.sessions.set(request.id, { cache, sampler });
    try {
      const out = this.shard.forward({ kind: 'tokens', tokens: request.promptTokens }, cache);
      if (out.kind !== 'logits') throw new ShardInputError('the last stage did not produce logits');
      return sampler.sample(out.logits);
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
    return session.sampler.sample(out.logits);
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
