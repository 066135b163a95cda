import { createInterface, type Interface } from 'node:readline';
import { DEFAULT_API_PORT } from '@edge-node/node/settings';
import type { CliCommand } from '../cli-command.js';
import { parseCommandLine } from '../command-line.js';
import { errorText, getFromNode, NodeApiError, nodeApi, type NodeApi } from '../node-api.js';
import { intOption, numberOption } from '../option-parsers.js';
import { readSseData } from '../sse-reader.js';
import { CLI_MAX_TOKENS, CLI_TEMPERATURE } from '../generation-defaults.js';

const HELP = `Usage: edge-node chat [--api URL] [options]

An interactive chat in the terminal with a running node (its OpenAI-compatible API); answers stream as they are
generated. Type /reset to start over, /exit (or Ctrl+D) to leave; Ctrl+C stops an answer.

Options:
  --api URL          the node's HTTP API (default http://127.0.0.1:${DEFAULT_API_PORT})
  --api-key KEY      when the node was started with --api-key (env EDGE_NODE_API_KEY)
  --model ID         model id (default: the one the node serves)
  --system TEXT      a system message to start the conversation with
  --max-tokens N     most tokens per answer (default ${CLI_MAX_TOKENS}, as edge-node run)
  --temperature T    0 = greedy (default ${CLI_TEMPERATURE}, as edge-node run)
`;

interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One conversation with a node: where, which model, how each answer is sampled, the system message if any. */
interface ChatSession {
  api: NodeApi;
  model: string;
  maxTokens: number;
  temperature: number;
  system: ChatMessage[];
}

/** The model the node serves (its first), for a chat without --model. */
async function servedModel(api: NodeApi): Promise<string> {
  const list = (await getFromNode(api, '/v1/models')) as { data: { id: string }[] };
  if (!list.data[0]) throw new NodeApiError(`the node at ${api.base} has no model loaded (start it with --model PATH)`);
  return list.data[0].id;
}

/** Streams one answer, each piece of text to `onText` as it comes; stops where `signal` aborts. */
async function streamAnswer(session: ChatSession, history: ChatMessage[], signal: AbortSignal, onText: (delta: string) => void): Promise<void> {
  const { api, model, maxTokens, temperature } = session;
  const res = await fetch(`${api.base}/v1/chat/completions`, {
    method: 'POST',
    headers: api.headers,
    signal,
    body: JSON.stringify({ model, messages: history, stream: true, max_tokens: maxTokens, temperature }),
  });
  if (!res.ok || !res.body) throw new NodeApiError(`the node answered ${res.status}: ${await errorText(res)}`);
  let started = false;
  for await (const event of readSseData(res.body)) {
    const e = event as { error?: { message: string }; choices?: { delta?: { content?: string } }[] };
    if (e.error) throw new NodeApiError(e.error.message);
    const delta = e.choices?.[0]?.delta?.content ?? '';
    // The answer starts at its first visible character.
    const text: string = started ? delta : delta.trimStart();
    started ||= text !== '';
    onText(text);
  }
}

/**
 * The user's turn and the node's answer, appended to the history. Ctrl+C (`current` aborted) keeps what was said so
 * far, marked stopped; an error drops the turn from the history and is told on stderr, and the chat goes on.
 */
async function takeTurn(session: ChatSession, history: ChatMessage[], line: string, current: AbortController): Promise<void> {
  const out = process.stdout;
  history.push({ role: 'user', content: line });
  let answer = '';
  out.write('assistant> ');
  try {
    await streamAnswer(session, history, current.signal, (delta) => {
      answer += delta;
      out.write(delta);
    });
    out.write('\n');
    history.push({ role: 'assistant', content: answer });
  } catch (err) {
    if ((err as Error).name === 'AbortError') {
      out.write(' [stopped]\n');
      history.push({ role: 'assistant', content: answer });
    } else {
      history.pop();
      out.write('\n');
      process.stderr.write(`edge-node chat: ${(err as Error).cause ? `cannot reach ${session.api.base}: ${String((err as Error).cause)}` : (err as Error).message}\n`);
    }
  }
}

/** The terminal's lines (or piped input), with a prompt that is not shown again once the input has closed. */
function openPromptReader(interactive: boolean): { rl: Interface; prompt: () => void } {
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, prompt: 'you> ', terminal: interactive });
  // Piped input closes the interface while an answer still streams; Node ≥ 22 throws on a prompt after close.
  let closed = false;
  rl.on('close', () => (closed = true));
  return { rl, prompt: () => (closed ? undefined : rl.prompt()) };
}

/** Reads the user's lines until /exit or the end of input; /reset starts the conversation over. */
async function converse(session: ChatSession): Promise<void> {
  const out = process.stdout;
  const interactive = process.stdin.isTTY === true;
  let history: ChatMessage[] = [...session.system];
  let current: AbortController | null = null;
  const { rl, prompt } = openPromptReader(interactive);
  rl.on('SIGINT', () => (current ? current.abort() : rl.close()));
  if (interactive) out.write(`Chatting with ${session.model} at ${session.api.base}. /reset starts over, /exit leaves.\n`);
  prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === '/exit' || line === '/quit') break;
    if (line === '/reset') {
      history = [...session.system];
      out.write('(conversation cleared)\n');
    } else if (line) {
      current = new AbortController();
      await takeTurn(session, history, line, current);
      current = null;
    }
    prompt();
  }
  rl.close();
  if (interactive) out.write('\n');
}

export const chatCommand: CliCommand = {
  name: 'chat',
  async run(argv) {
    const parsed = parseCommandLine(
      {
        args: argv,
        options: {
          api: { type: 'string' },
          'api-key': { type: 'string' },
          model: { type: 'string' },
          system: { type: 'string' },
          'max-tokens': { type: 'string' },
          temperature: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      },
      HELP,
    );
    if (!parsed) return 0;
    const { values } = parsed;
    const api = nodeApi(values.api, values['api-key']);
    await converse({
      api,
      maxTokens: intOption(values['max-tokens'], '--max-tokens', CLI_MAX_TOKENS),
      temperature: numberOption(values.temperature, '--temperature', CLI_TEMPERATURE),
      model: values.model || (await servedModel(api)),
      system: values.system ? [{ role: 'system', content: values.system }] : [],
    });
    return 0;
  },
};
