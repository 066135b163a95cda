import type { ModelConfig } from '../model/model-config.js';
import type { FrameLimits } from './activation-frame.js';

/** Most stages a route may have. */
const MAX_ROUTE = 64;

/** Rows of hidden states one frame carries, leaving room for its other fields: a larger prompt travels in several chunks. */
export function maxRowsPerFrame(config: ModelConfig, maxFrameBytes: number): number {
  return Math.max(1, Math.floor((maxFrameBytes * 0.9) / (config.hiddenSize * 4)));
}

/** What an activation frame may hold on a node serving this model (parseActivationFrame checks every inbound one). */
export function frameLimits(config: ModelConfig, maxFrameBytes: number, contextLength: number): FrameLimits {
  return { maxRows: maxRowsPerFrame(config, maxFrameBytes), hiddenSize: config.hiddenSize, vocabSize: config.vocabSize, maxRoute: MAX_ROUTE, maxContext: contextLength };
}
