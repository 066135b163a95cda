import type { ChatMessage } from '../tokenizer/chat-template.js';

/** One line of a fine-tuning file: plain text (loss on all of it) or a chat (loss on the assistant turns only). */
export type TrainingExample = { kind: 'text'; line: number; text: string } | { kind: 'chat'; line: number; messages: ChatMessage[] };

/** A line of the data file that cannot be used, with its 1-based number. */
export class TrainingDataError extends Error {
  override name = 'TrainingDataError';
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(line > 0 ? `${file} line ${line}: ${reason}` : `${file}: ${reason}`);
  }
}

const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant', 'tool']);
const SHAPES = 'expected {"text": "…"} or {"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseMessages(raw: unknown, fail: (why: string) => never): ChatMessage[] {
  if (!Array.isArray(raw) || raw.length === 0) fail('"messages" must be a non-empty array');
  const messages = raw.map((m: unknown, i): ChatMessage => {
    if (!isRecord(m)) fail(`message ${i} is not an object`);
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) fail(`message ${i} has role ${JSON.stringify(m.role)}; it must be one of system, user, assistant, tool`);
    if (typeof m.content !== 'string') fail(`message ${i} has no "content" string`);
    return { role: m.role as ChatMessage['role'], content: m.content };
  });
  if (!messages.some((m) => m.role === 'assistant' && m.content.length > 0)) fail('no assistant message with content: nothing to learn from this line');
  return messages;
}

/**
 * Every line of a JSONL fine-tuning file (OpenAI's format for chats: {"messages": […]}; or {"text": …}). Blank lines
 * are skipped; any other line that is not one of the two shapes is refused with its number. At least one example.
 */
export function parseTrainingJsonl(text: string, file: string): TrainingExample[] {
  const out: TrainingExample[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const fail = (why: string): never => {
      throw new TrainingDataError(file, line, why);
    };
    if (raw.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      fail(`not JSON (${(e as Error).message}); ${SHAPES}`);
    }
    if (!isRecord(v)) return fail(`not a JSON object; ${SHAPES}`);
    if ('text' in v && 'messages' in v) fail('has both "text" and "messages"; give one');
    if (typeof v.text === 'string') {
      if (v.text.trim() === '') fail('"text" is empty');
      out.push({ kind: 'text', line, text: v.text });
    } else if ('messages' in v) {
      out.push({ kind: 'chat', line, messages: parseMessages(v.messages, fail) });
    } else {
      fail(SHAPES);
    }
  });
  if (out.length === 0) throw new TrainingDataError(file, 0, 'no examples (the file is empty)');
  return out;
}
