/**
 * A prompt text that the model's own tokenizer turns into exactly N tokens (BOS included when the model adds one).
 * wllama 3's completion takes text only (its server-context does not accept token ids), so the baseline builds the
 * prompt here with edge-node's tokenizer (which matches llama.cpp's on plain text) and the page checks that llama.cpp
 * counted the same N.
 */
import { openModel } from '../packages/node/src/model/open-model.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';

const WORDS = 'Once upon a time there was a little cat who lived in a small house near the river and every day she went out to look at the boats'.split(' ');

export async function exactPromptText(modelPath: string, tokens: number): Promise<string> {
  const model = await openModel(modelPath);
  try {
    const tokenizer = await loadTokenizer(model.tokenizer);
    const count = (s: string) => tokenizer.encode(s).length;
    let text = '';
    for (let i = 0; count(text) < tokens; i++) {
      const next = (text ? ' ' : '') + WORDS[i % WORDS.length];
      if (count(text + next) <= tokens) text += next;
      // A word that would overshoot: fill with short pieces, one token each in the vocabularies we generate.
      else if (count(text + ' a') <= tokens) text += ' a';
      else if (count(text + '.') <= tokens) text += '.';
      else throw new Error(`cannot make a prompt of exactly ${tokens} tokens for ${modelPath} (stuck at ${count(text)})`);
    }
    return text;
  } finally {
    await model.close();
  }
}
