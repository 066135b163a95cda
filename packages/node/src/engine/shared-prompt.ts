import type { ShardInput, ShardOutput } from './forward-shard.js';
import type { ComputedRows, RowsToCompute } from './batch-scheduler.js';

/**
 * A prompt computed from an empty KV cache, which an identical prompt on the same shard may copy instead of computing
 * it again (the choices of a request with n > 1 all start with the same prompt). Every row's result is the same bits
 * whatever the batch, so the copy is exactly what the second prompt would have computed.
 */
export interface SharedPrompt {
  target: RowsToCompute;
  /** Its own copy of the output (the first request's sampler must not be able to change what the others get). */
  output: ShardOutput;
  computeMs: number;
}

/** Whether two works, both starting on an empty cache, compute the same rows on the same shard. */
export function samePrompt(a: RowsToCompute, b: RowsToCompute): boolean {
  return a.shard === b.shard && a.logits === b.logits && (a.embedding ?? false) === (b.embedding ?? false) && sameInput(a.input, b.input);
}

/** Gives `to` (an empty cache) the prompt's positions and a copy of its output. */
export function copyPrompt(prompt: SharedPrompt, to: RowsToCompute): ComputedRows {
  const rows = prompt.target.input.kind === 'tokens' ? prompt.target.input.tokens.length : prompt.target.input.n;
  to.cache.copyPrefix(prompt.target.cache, rows);
  return { output: copyOutput(prompt.output), computeMs: prompt.computeMs };
}

/** Prompts computed lately that an identical one may still copy: at most this many, for this long. */
const RECENT_PROMPTS = 8;
/** The choices of one request reach a stage within milliseconds of each other (a frame each, one after another). */
const RECENT_PROMPT_MS = 1000;

/** The prompts computed lately, for identical prompts still to come. */
export class RecentPrompts {
  private prompts: (SharedPrompt & { at: number })[] = [];
  private pruneTimer: ReturnType<typeof setTimeout> | null = null;

  add(prompt: SharedPrompt): void {
    this.prompts = [{ ...prompt, at: performance.now() }, ...this.prompts].slice(0, RECENT_PROMPTS);
    this.prune();
  }

  /** One identical to `target` whose cache still holds its `rows` rows, if any. */
  find(target: RowsToCompute, rows: number): SharedPrompt | undefined {
    this.prune();
    return this.prompts.find((p) => p.target.cache.length >= rows && samePrompt(p.target, target));
  }

  /** Forgets prompts older than the window (their outputs are held in memory), and again when the next one ages. */
  private prune(): void {
    const now = performance.now();
    this.prompts = this.prompts.filter((p) => now - p.at < RECENT_PROMPT_MS);
    if (this.pruneTimer !== null || this.prompts.length === 0) return;
    const oldest = this.prompts[this.prompts.length - 1].at;
    this.pruneTimer = setTimeout(() => {
      this.pruneTimer = null;
      this.prune();
    }, RECENT_PROMPT_MS - (now - oldest) + 1);
    (this.pruneTimer as { unref?: () => void }).unref?.();
  }
}

export function copyOutput(out: ShardOutput): ShardOutput {
  return out.kind === 'hidden' ? { kind: 'hidden', hidden: out.hidden.slice(), n: out.n } : { kind: 'logits', logits: out.logits.slice(), rows: out.rows };
}

function sameInput(a: ShardInput, b: ShardInput): boolean {
  if (a.kind === 'tokens' && b.kind === 'tokens') {
    if (a.tokens.length !== b.tokens.length) return false;
    for (let i = 0; i < a.tokens.length; i++) if (a.tokens[i] !== b.tokens[i]) return false;
    return true;
  }
  if (a.kind === 'hidden' && b.kind === 'hidden') {
    if (a.n !== b.n || a.hidden.length !== b.hidden.length) return false;
    // Bits, not values: -0 and 0 (or two NaNs) are not the same input.
    const x = new Uint32Array(a.hidden.buffer, a.hidden.byteOffset, a.hidden.length);
    const y = new Uint32Array(b.hidden.buffer, b.hidden.byteOffset, b.hidden.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  return false;
}
