import type { GrammarSpec } from '../grammar/grammar-spec.js';
import { ChatTemplate, type ChatMessage } from '../tokenizer/chat-template.js';
import { requireGenerator, type ServingContext } from './serve-generation.js';
import { renderWithTools, toolCallFormat, toolCallGrammar, type ToolCallFormat, type ToolChoice, type ToolDef } from './tool-calls.js';

/** The model's chat template (parsed once) and the BOS text it may write itself. */
export interface ChatRendering {
  chat: ChatTemplate;
  bosText: string | null;
}

export function chatRendering(ctx: ServingContext): () => ChatRendering {
  let template: ChatRendering | null = null;
  return () => {
    if (!template) {
      const g = requireGenerator(ctx);
      const t = g.tokenizer;
      const bosText = t.bosId === null ? null : t.tokenToPiece(t.bosId);
      const eosText = t.eosIds.length > 0 ? t.tokenToPiece(t.eosIds[0]) : '';
      template = { chat: new ChatTemplate(g.chatTemplate, bosText ?? '', eosText), bosText };
    }
    return template;
  };
}

/** A template that writes the BOS token itself must not get a second one from the tokenizer. */
export function addBosFor(r: ChatRendering, prompt: string): boolean | undefined {
  return !r.chat.isFallback && r.bosText && prompt.startsWith(r.bosText) ? false : undefined;
}

/** A conversation as every chat dialect (OpenAI chat and Responses, Anthropic Messages, Ollama) hands it over. */
export interface ChatConversation {
  messages: ChatMessage[];
  tools: ToolDef[];
  choice: ToolChoice;
  /** Structured output (JSON object or schema), or null. */
  format: GrammarSpec | null;
}

/** The conversation rendered for the model: the prompt text, the grammar to enforce, the stops to add. */
export interface ChatPrompt {
  prompt: string;
  /** Set when the tokenizer must not add BOS (the template wrote it). */
  addBos?: boolean;
  /** A forced tool call's grammar, else the structured-output one, else null. */
  grammar: GrammarSpec | null;
  /** Stops the dialect adds to the client's: a base model continuing the plain transcript would write the user's next turn. */
  extraStop: string[];
  tools: { defs: ToolDef[]; choice: ToolChoice; format: ToolCallFormat };
}

/** Renders a conversation with the model's chat template (tools through it or the fallback description). */
export function renderChatPrompt(r: ChatRendering, c: ChatConversation): ChatPrompt {
  const withTools = c.tools.length > 0 || c.messages.some((m) => m.role === 'tool' || m.tool_calls);
  const prompt = withTools ? renderWithTools(r.chat, c.messages, c.tools, c.choice) : r.chat.render(c.messages, true);
  const format = toolCallFormat(r.chat);
  const addBos = addBosFor(r, prompt);
  return {
    prompt,
    ...(addBos === undefined ? {} : { addBos }),
    grammar: toolCallGrammar(c.tools, c.choice, format) ?? c.format,
    extraStop: r.chat.isFallback ? ['\nUser:'] : [],
    tools: { defs: c.tools, choice: c.choice, format },
  };
}
