import { Template } from '@huggingface/jinja';
import { ChatTemplateError } from './tokenizer-errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** An assistant turn's tool calls (`arguments` parsed, as tool-aware templates expect). */
  tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: unknown } }[];
  /** A tool turn: which call it answers, and the tool's name. */
  tool_call_id?: string;
  name?: string;
}

/** A function the model may call, as tool-aware templates take it. */
export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown };
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
  const label = { system: 'System', user: 'User', assistant: 'Assistant', tool: 'Tool' } as const;
  const lines = messages.map((m) => `${label[m.role]}: ${m.content}`);
  if (addGenerationPrompt) lines.push('Assistant:');
  return lines.join('\n');
}

/** A parsed template, reusable across requests (parsing costs more than rendering). */
export class ChatTemplate {
  private readonly template: Template | null;

  constructor(
    private readonly source: string | null,
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

  /** Whether the template renders a `tools` list (Qwen2.5, Llama 3.x, Hermes-style templates do). */
  get takesTools(): boolean {
    return this.source !== null && /\btools\b/.test(this.source);
  }

  /** The template's source (null: the plain fallback). */
  get text(): string | null {
    return this.source;
  }

  /** True when the model has no template and the plain fallback is used. */
  get isFallback(): boolean {
    return this.template === null;
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = true, tools?: readonly ChatTool[]): string {
    if (this.template === null) return renderFallbackChat(messages, addGenerationPrompt);
    try {
      return this.template.render({
        messages: messages.map((m) => ({ ...m })),
        ...(tools && tools.length > 0 ? { tools } : {}),
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
