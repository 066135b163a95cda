import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import { BatchScheduler } from './batch-scheduler.js';
import { GenerationCancelledError } from './generate.js';
import { createRequestSampler } from './request-sampler.js';
import type { Sampler } from './sampler.js';
import type { EmbeddingExecutor, ExecutionRequest, TokenExecutor } from './token-executor.js';
import { MeanPool } from './mean-pool.js';
import { verifyDraft } from './draft-verification.js';
import { ShardInputError, type ForwardShard, type ShardKvCache } from './forward-shard.js';

interface Session {
  cache: ShardKvCache;
  sampler: Sampler;
  request: ExecutionRequest;
  /** Stops listening to the request's abort signal. */
  unlisten: () => void;
}

/**
 * The whole model on this device: one shard holding every layer, plus the sampler. Requests run on the same
 * continuous-batching scheduler as a pipeline stage: a prompt is computed in slices, and the rows of every request
 * in flight share each step's pass over the weights; each request's tokens are the same as if it ran alone.
 */
export class LocalExecutor implements TokenExecutor, EmbeddingExecutor {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly shard: ForwardShard,
    /** The tokenizer's byte strings, for requests with a grammar (built on first use). */
    private readonly vocabulary: () => TokenVocabulary = () => {
      throw new ShardInputError('this executor has no vocabulary for constrained sampling');
    },
    private readonly scheduler: BatchScheduler = new BatchScheduler(),
  ) {
    if (!shard.isFirst || !shard.isLast) throw new ShardInputError('a local executor needs a shard with every layer');
  }

  async begin(request: ExecutionRequest): Promise<number> {
    if (this.sessions.has(request.id)) throw new ShardInputError(`request ${request.id} is already running`);
    if (request.signal?.aborted) throw new GenerationCancelledError();
    const sampler = createRequestSampler(request, this.vocabulary);
    const cache = this.shard.createCache(request.contextLength);
    // An abort stops the request between steps, even part-way through its prompt.
    const abort = () => this.scheduler.cancel(request.id, new GenerationCancelledError());
    request.signal?.addEventListener('abort', abort, { once: true });
    const session: Session = { cache, sampler, request, unlisten: () => request.signal?.removeEventListener('abort', abort) };
    this.sessions.set(request.id, session);
    try {
      return await this.next(session, request.promptTokens);
    } catch (err) {
      await this.end(request.id);
      throw err;
    }
  }

  /** The prompt's final-normed rows through the scheduler (batched with other requests), pooled. */
  async embed(request: ExecutionRequest): Promise<Float32Array> {
    if (request.signal?.aborted) throw new GenerationCancelledError();
    const cache = this.shard.createCache(request.promptTokens.length);
    const abort = () => this.scheduler.cancel(request.id, new GenerationCancelledError());
    request.signal?.addEventListener('abort', abort, { once: true });
    try {
      const { output } = await this.scheduler.submit({
        request: request.id,
        rows: request.promptTokens.length,
        start: () => ({ shard: this.shard, cache, input: { kind: 'tokens', tokens: request.promptTokens }, logits: false, embedding: true }),
      });
      if (output.kind !== 'hidden') throw new ShardInputError('the shard did not produce hidden states for an embedding');
      const pool = new MeanPool(this.shard.config.hiddenSize);
      pool.add(output.hidden, output.n);
      return pool.result();
    } finally {
      request.signal?.removeEventListener('abort', abort);
      cache.clear();
    }
  }

  async step(requestId: string, token: number): Promise<number> {
    const session = this.sessions.get(requestId);
    if (!session) throw new ShardInputError(`request ${requestId} is not running`);
    return this.next(session, [token]);
  }

  /** The token and the draft in one pass; each row sampled in order; the rejected drafts' rows cut from the cache. */
  async verify(requestId: string, token: number, draft: readonly number[]): Promise<number[]> {
    const s = this.sessions.get(requestId);
    if (!s) throw new ShardInputError(`request ${requestId} is not running`);
    const tokens = [token, ...draft];
    const pos = s.cache.length;
    const { output } = await this.scheduler.submit({
      request: s.request.id,
      rows: tokens.length,
      start: () => ({ shard: this.shard, cache: s.cache, input: { kind: 'tokens', tokens }, logits: 'all' }),
    });
    if (output.kind !== 'logits') throw new ShardInputError('the last stage did not produce logits');
    const ctx = s.request.contextLength;
    const verified = verifyDraft(s.sampler, output.logits, this.shard.config.vocabSize, draft, (i) => ctx - (pos + i + 1));
    // Rows kept: the fed token's and the accepted drafts'; the token sampled after them is fed by the next pass.
    s.cache.truncate(pos + verified.tokens.length);
    for (const lp of verified.logprobs ?? []) s.request.onLogprob?.(lp);
    return verified.tokens;
  }

  /** Queues the rows, then samples the request's next token from the logits of the last one. */
  private async next(s: Session, tokens: number[]): Promise<number> {
    const { output } = await this.scheduler.submit({
      request: s.request.id,
      rows: tokens.length,
      start: () => ({ shard: this.shard, cache: s.cache, input: { kind: 'tokens', tokens }, logits: true }),
    });
    if (output.kind !== 'logits') throw new ShardInputError('the last stage did not produce logits');
    const token = s.sampler.sample(output.logits, s.request.contextLength - s.cache.length);
    if (s.sampler.lastLogprob) s.request.onLogprob?.(s.sampler.lastLogprob);
    return token;
  }

  async end(requestId: string): Promise<void> {
    const session = this.sessions.get(requestId);
    if (!session) return;
    this.scheduler.cancel(requestId, new GenerationCancelledError());
    session.unlisten();
    session.cache.clear();
    this.sessions.delete(requestId);
  }

  /** Requests currently holding a KV cache here. */
  get activeRequests(): number {
    return this.sessions.size;
  }

  /** Bytes held by the requests' KV caches. */
  cacheBytes(): number {
    let total = 0;
    for (const s of this.sessions.values()) total += s.cache.bytes();
    return total;
  }
}
