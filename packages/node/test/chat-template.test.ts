import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, renderChat, renderFallbackChat, type ChatMessage } from '../src/tokenizer/chat-template.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import { ChatTemplateError } from '../src/tokenizer/tokenizer-errors.js';

const SMOLLM = '/work/shared/models/smollm2-135m-instruct-tokenizer';
const chatml = readFileSync(`${SMOLLM}/chat_template.jinja`, 'utf8');

/** A Llama-3-Instruct-style template (BOS first, header markers, trimmed content, <|eot_id|> per turn). */
const LLAMA3 =
  "{{- bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi!' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Tell me a story.' },
];

describe('chat templates', () => {
  it('renders the SmolLM2 ChatML template, adding its default system prompt when none is given', () => {
    expect(renderChat([{ role: 'user', content: 'Hi!' }], { template: chatml })).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
        '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n',
    );
    const rendered = renderChat(conversation, { template: chatml });
    expect(rendered).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n' +
        '<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(renderChat(conversation, { template: chatml, addGenerationPrompt: false })).toBe(rendered.slice(0, -'<|im_start|>assistant\n'.length));
  });

  it('a rendered ChatML prompt tokenizes to the special marker tokens', async () => {
    const tok = await loadTokenizer({ kind: 'tokenizer-json', path: `${SMOLLM}/tokenizer.json`, configPath: null });
    const ids = tok.encode(renderChat(conversation, { template: chatml }));
    const imStart = tok.pieceToToken('<|im_start|>') as number;
    expect(ids.filter((id) => id === imStart)).toHaveLength(5);
    expect(ids.filter((id) => id === tok.pieceToToken('<|im_end|>'))).toHaveLength(4);
  });

  it('renders a Llama-3-style template with bos_token and trim', () => {
    const t = new ChatTemplate(LLAMA3, '<|begin_of_text|>', '<|eot_id|>');
    expect(t.isFallback).toBe(false);
    expect(t.render([{ role: 'system', content: '  Be brief. ' }, { role: 'user', content: 'Hi!\n' }])).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('falls back to a plain transcript when the model has no template', () => {
    const t = new ChatTemplate(null);
    expect(t.isFallback).toBe(true);
    expect(t.render(conversation)).toBe('System: Be brief.\nUser: Hi!\nAssistant: Hello.\nUser: Tell me a story.\nAssistant:');
    expect(renderFallbackChat([{ role: 'user', content: 'x' }], false)).toBe('User: x');
  });

  it('turns template syntax errors and raise_exception into ChatTemplateError', () => {
    expect(() => new ChatTemplate('{% for m in messages %}{{ m.content }')).toThrow(ChatTemplateError);
    const strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}ok";
    expect(renderChat([{ role: 'user', content: 'x' }], { template: strict })).toBe('ok');
    expect(() => renderChat(conversation, { template: strict })).toThrow(ChatTemplateError);
    expect(() => renderChat(conversation, { template: strict })).toThrow(/must start with a user message/);
  });
});
