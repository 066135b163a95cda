import { Template } from '@huggingface/jinja';
import { ChatTemplateError } from './tokenizer-errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatTemplateOptions {
  /** Jinja template from the model (tokenizer_config.json `chat_template` or GGUF `tokenizer.chat_template`); null when it has none. */
  template: string | null;
  bosToken?: string;
  eosToken?: string;
  /** End with the opening of an assistant turn so the model answers (default true). */
  addGenerationPrompt?: boolean;
}

/**
 * Plain-text prompt for models without a chat template (e.g. stories260K, a base model). Such models were not
 * trained on any turn markup, so inventing special tokens would only add noise; a "Role: text" transcript
 * ending in "Assistant:" is the most natural continuation prompt for a base model and is easy to read.
 */
export function renderFallbackChat(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
  const label = { system: 'System', user: 'User', assistant: 'Assistant' } as const;
  const lines = messages.map((m) => `${label[m.role]}: ${m.content}`);
  if (addGenerationPrompt) lines.push('Assistant:');
  return lines.join('\n');
}

/** A parsed template, reusable across requests (parsing costs more than rendering). */
export class ChatTemplate {
  private readonly template: Template | null;

  constructor(
    source: string | null,
    private readonly bosToken = '',
    private readonly eosToken = '',
  ) {
    if (source === null) {
      this.template = null;
      return;
    }
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`cannot parse: ${(e as Error).message}`, { cause: e });
    }
  }

  /** True when the model has no template and the plain fallback is used. */
  get isFallback(): boolean {
    return this.template === null;
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
    if (this.template === null) return renderFallbackChat(messages, addGenerationPrompt);
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        bos_token: this.bosToken,
        eos_token: this.eosToken,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      throw new ChatTemplateError(`rendering failed: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** One-shot render: parse `opts.template` (or use the plain fallback when null) and render `messages`. */
export function renderChat(messages: readonly ChatMessage[], opts: ChatTemplateOptions): string {
  return new ChatTemplate(opts.template, opts.bosToken ?? '', opts.eosToken ?? '').render(messages, opts.addGenerationPrompt ?? true);
}
