import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DEFAULT_API_PORT } from '@edge-node/node';
import { UsageError, type CliCommand } from '../cli-command.js';
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

/** The node could not be reached or refused the chat. */
export class ChatApiError extends Error {
  override name = 'ChatApiError';
}

interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
  } catch {
    return text;
  }
}

export const chatCommand: CliCommand = {
  name: 'chat',
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({
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
      }));
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n\n${HELP}`);
    }
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const base = (values.api ?? `http://127.0.0.1:${DEFAULT_API_PORT}`).replace(/\/$/, '');
    const apiKey = values['api-key'] ?? process.env.EDGE_NODE_API_KEY;
    const maxTokens = intOption(values['max-tokens'], '--max-tokens', CLI_MAX_TOKENS);
    const temperature = numberOption(values.temperature, '--temperature', CLI_TEMPERATURE);
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) };

    let model = values.model;
    if (!model) {
      let res: Response;
      try {
        res = await fetch(`${base}/v1/models`, { headers, signal: AbortSignal.timeout(5000) });
      } catch (err) {
        throw new ChatApiError(`no edge-node answers at ${base} (${(err as Error).cause ?? (err as Error).message}); is it running? pass --api with its API URL`);
      }
      if (!res.ok) throw new ChatApiError(`${base}/v1/models answered ${res.status}: ${await errorText(res)}`);
      const list = (await res.json()) as { data: { id: string }[] };
      if (!list.data[0]) throw new ChatApiError(`the node at ${base} has no model loaded (start it with --model PATH)`);
      model = list.data[0].id;
    }

    const out = process.stdout;
    const interactive = process.stdin.isTTY === true;
    const system: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
    let history: ChatMessage[] = [...system];
    let current: AbortController | null = null;
    const rl = createInterface({ input: process.stdin, output: interactive ? out : undefined, prompt: 'you> ', terminal: interactive });
    rl.on('SIGINT', () => {
      if (current) current.abort();
      else rl.close();
    });
    // Piped input closes the interface while an answer still streams; Node ≥ 22 throws on a prompt after close.
    let closed = false;
    rl.on('close', () => (closed = true));
    const prompt = () => {
      if (!closed) rl.prompt();
    };
    if (interactive) out.write(`Chatting with ${model} at ${base}. /reset starts over, /exit leaves.\n`);
    prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === '/quit') break;
      if (line === '/reset') {
        history = [...system];
        out.write('(conversation cleared)\n');
        prompt();
        continue;
      }
      if (!line) {
        prompt();
        continue;
      }
      history.push({ role: 'user', content: line });
      current = new AbortController();
      let answer = '';
      out.write('assistant> ');
      try {
        const res = await fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers,
          signal: current.signal,
          body: JSON.stringify({ model, messages: history, stream: true, max_tokens: maxTokens, temperature }),
        });
        if (!res.ok || !res.body) throw new ChatApiError(`the node answered ${res.status}: ${await errorText(res)}`);
        for await (const event of readSseData(res.body)) {
          const e = event as { error?: { message: string }; choices?: { delta?: { content?: string } }[] };
          if (e.error) throw new ChatApiError(e.error.message);
          let delta = e.choices?.[0]?.delta?.content ?? '';
          if (!answer) delta = delta.trimStart();
          answer += delta;
          out.write(delta);
        }
        out.write('\n');
        history.push({ role: 'assistant', content: answer });
      } catch (err) {
        if ((err as Error).name === 'AbortError') {
          out.write(' [stopped]\n');
          history.push({ role: 'assistant', content: answer });
        } else {
          history.pop();
          out.write('\n');
          process.stderr.write(`edge-node chat: ${(err as Error).cause ? `cannot reach ${base}: ${String((err as Error).cause)}` : (err as Error).message}\n`);
        }
      } finally {
        current = null;
      }
      prompt();
    }
    rl.close();
    if (interactive) out.write('\n');
    return 0;
  },
};
