import type { GenerationResult } from '../engine/generate.js';
import { invalidRequest } from './openai-errors.js';

/**
 * edge-node's `speculation` extension of a usage object, the same in every dialect: tokens drafted and accepted,
 * the decode's walks through the pipeline, the tokens each walk returned on average, and the draft length chosen.
 */
export interface SpeculationUsage {
  drafted_tokens: number;
  accepted_tokens: number;
  decode_walks: number;
  tokens_per_walk: number;
  /** The draft length k the request's tuner chose last (the largest over its choices; 0: plain steps won). */
  draft_length: number;
}

/** The answers' speculation summed (null when none speculated). */
export function speculationUsage(results: readonly GenerationResult[]): SpeculationUsage | null {
  const stats = results.map((r) => r.speculation).filter((s) => s !== undefined);
  if (stats.length === 0) return null;
  const drafted = stats.reduce((n, s) => n + s.drafted, 0);
  const accepted = stats.reduce((n, s) => n + s.accepted, 0);
  const walks = stats.reduce((n, s) => n + s.walks, 0);
  const tokens = stats.reduce((n, s) => n + s.tokens, 0);
  const draftLength = Math.max(...stats.map((s) => s.draftLength));
  return { drafted_tokens: drafted, accepted_tokens: accepted, decode_walks: walks, tokens_per_walk: walks > 0 ? tokens / walks : 0, draft_length: draftLength };
}

/**
 * The `speculate` extension field (`param` names it in errors, e.g. `options.speculate`): true or false, or
 * undefined when absent or null (the node's default).
 */
export function parseSpeculate(o: Readonly<Record<string, unknown>>, field: string, param = field): boolean | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidRequest(`"${param}" must be true or false (got ${JSON.stringify(v)}): edge-node's switch for speculative decoding`, param, 'invalid_type');
  return v;
}

/** The `speculation` usage field of an answer whose request asked for speculation (`speculate: true`), else nothing. */
export function requestedSpeculation(speculate: boolean | undefined, results: readonly GenerationResult[]): { speculation?: SpeculationUsage } {
  if (speculate !== true) return {};
  const s = speculationUsage(results);
  return s ? { speculation: s } : {};
}
