import { promptLookupDraft } from './prompt-lookup.js';
import type { Drafter } from './speculation.js';

/**
 * Drafts from a prediction of the output (OpenAI's Predicted Outputs: the client sends the text it expects, e.g. a
 * file it asks to edit): while the output so far is the prediction's beginning, its next tokens; once the output
 * departs from it, prompt lookup over the prediction and the sequence, which picks it up again where they re-align.
 */
export function predictionDrafter(prediction: readonly number[]): Drafter {
  return (history, maxTokens, promptLength) => {
    const produced = history.length - promptLength;
    let aligned = produced <= prediction.length;
    for (let i = 0; i < produced && aligned; i++) aligned = history[promptLength + i] === prediction[i];
    if (aligned && produced < prediction.length) return prediction.slice(produced, produced + maxTokens);
    return promptLookupDraft([...prediction, ...history], maxTokens);
  };
}
