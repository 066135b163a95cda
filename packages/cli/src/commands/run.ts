import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
// Only types and defaults at load: `run --help` answers without the runtime, which the run itself imports.
import type { HubSettings, LocalModel } from '@edge-node/node';
import { GREEDY, DEFAULT_SAMPLING, type EngineOptions, type SamplingParams } from '@edge-node/node/settings';
import { parseCommandLine } from '../command-line.js';
import { CLI_MAX_TOKENS, CLI_TEMPERATURE } from '../generation-defaults.js';
import { createDownloadProgressBar } from '../progress-bar.js';
import { ENGINE_FLAG_OPTIONS, ENGINE_FLAGS_USAGE, engineOptionsFrom } from '../engine-flags.js';
import { LORA_FLAG_OPTIONS, LORA_FLAGS_USAGE, loraOptionFrom } from '../lora-flags.js';
import { UsageError, type CliCommand } from '../cli-command.js';
import { intOption, numberOption, onOff } from '../option-parsers.js';

const USAGE = `Usage: edge-node run [--model PATH|REPO] --prompt TEXT [options]

Generates text on this device alone.

Options:
  --model PATH|REPO     GGUF file, Hugging Face folder (config.json + *.safetensors), or a Hub repo id
                        owner/name[@revision][/file.gguf] downloaded once into <data dir>/hub. Without it: the
                        model edge-node start serves (the Hub's default chat model when cached or reachable, else
                        the demo model shipped with edge-node)
  --data-dir DIR        where Hub downloads are kept (default ~/.cache/edge-node/default, as edge-node start)
  --hub-endpoint URL    Hugging Face Hub URL (env HF_ENDPOINT; default https://huggingface.co)
  --prompt TEXT         raw prompt (BOS is prepended when the model asks for it, as llama.cpp does)
  --max-tokens N        most tokens to generate (default ${CLI_MAX_TOKENS}, as edge-node chat)
  --temperature T       0 = greedy (default ${CLI_TEMPERATURE}, as edge-node chat)
  --top-k N             (default 40; 0 = off)
  --top-p P             (default 0.95; 1 = off)
  --min-p P             (default 0.05; 0 = off)
  --repeat-penalty R    (default 1 = off)
  --seed S              same seed, same text
  --stop TEXT           stop before this text (repeatable)
  --ignore-eos          keep generating past end-of-sequence
  --context N           context limit in tokens (default: the model's)
  --speculate on|off    speculative decoding with drafts from the prompt and output (prompt lookup; default on):
                        the same text in fewer passes; backs off by itself where drafts are rejected
  --draft-model PATH|REPO
                        draft with this smaller model of the same tokenizer (checked) instead of prompt lookup:
                        a file, a folder or a Hugging Face repo id, fetched into the cache as --model's is
${LORA_FLAGS_USAGE}
${ENGINE_FLAGS_USAGE}
  --json                print one JSON object: text, tokens, promptTokens, finishReason, timings
`;

/** ", speculation: 12 of 30 drafted tokens accepted, 1.4 tokens per pass, k = 4" (nothing when it did not speculate). */
function speculationLine(s: { drafted: number; accepted: number; walks: number; tokens: number; draftLength: number } | undefined): string {
  if (!s || s.walks === 0) return '';
  return `, speculation: ${s.accepted} of ${s.drafted} drafted tokens accepted, ${(s.tokens / s.walks).toFixed(2)} tokens per pass, k = ${s.draftLength}`;
}

function parseRunFlags(argv: string[]) {
  return parseCommandLine({
    args: argv,
    options: {
      model: { type: 'string' },
      'data-dir': { type: 'string' },
      'hub-endpoint': { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'min-p': { type: 'string' },
      'repeat-penalty': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      'ignore-eos': { type: 'boolean' },
      context: { type: 'string' },
      speculate: { type: 'string' },
      'draft-model': { type: 'string' },
      ...LORA_FLAG_OPTIONS,
      ...ENGINE_FLAG_OPTIONS,
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }, USAGE);
}

type RunFlags = NonNullable<ReturnType<typeof parseRunFlags>>['values'];

/** The sampling flags over the engine's defaults (greedy's at temperature 0). */
function samplingFrom(values: RunFlags): SamplingParams {
  const temperature = numberOption(values.temperature, '--temperature', CLI_TEMPERATURE);
  const base = temperature === 0 ? GREEDY : DEFAULT_SAMPLING;
  return {
    ...base,
    temperature,
    topK: intOption(values['top-k'], '--top-k', base.topK),
    topP: numberOption(values['top-p'], '--top-p', base.topP),
    minP: numberOption(values['min-p'], '--min-p', base.minP),
    repetitionPenalty: numberOption(values['repeat-penalty'], '--repeat-penalty', 1),
    seed: values.seed === undefined ? null : intOption(values.seed, '--seed', 0),
  };
}

/** The same resolution as edge-node start: a path, a Hub repo id (cached in the data dir), or the default model. */
async function resolveRunModel(values: RunFlags): Promise<{ path: string; draftPath: string | undefined }> {
  const [{ hubOptionsFromEnv, resolveModelSource }, { chooseDefaultModel }] = await Promise.all([import('@edge-node/node'), import('../default-model.js')]);
  const dataDir = resolve(values['data-dir'] ?? join(homedir(), '.cache', 'edge-node', 'default'));
  const hub: HubSettings = {
    ...hubOptionsFromEnv(process.env),
    ...(values['hub-endpoint'] !== undefined ? { endpoint: values['hub-endpoint'] } : {}),
    onProgress: createDownloadProgressBar(),
  };
  const say = (line: string) => process.stderr.write(`edge-node: ${line}\n`);
  const probe = Number(process.env.EDGE_NODE_HUB_PROBE_MS);
  const ref = values.model ?? (await chooseDefaultModel({ dataDir, hub, say, ...(Number.isFinite(probe) && probe > 0 ? { probeMs: probe } : {}) }));
  const path = await resolveModelSource(ref, dataDir, hub);
  const draft = values['draft-model'];
  // The draft model as --model: a file or folder, else a repo id fetched into the same cache.
  const draftPath = draft === undefined ? undefined : await resolveModelSource(draft, dataDir, hub).catch((err: unknown) => {
    throw new UsageError(`--draft-model ${draft}: ${(err as Error).message}`);
  });
  return { path, draftPath };
}

/** The model, and the draft model that drafts for it when --draft-model is given (closed again if the model fails). */
async function openRunModels(path: string, draftPath: string | undefined, values: RunFlags, engine: EngineOptions, contextLength: number | undefined): Promise<{ model: LocalModel; draft: LocalModel | null }> {
  const { LocalModel } = await import('@edge-node/node');
  const speculate = values.speculate === undefined ? true : onOff(values.speculate, '--speculate');
  const draft = draftPath === undefined ? null : await LocalModel.open(draftPath, { ...engine, ...(contextLength !== undefined ? { contextLength } : {}) });
  try {
    const lora = loraOptionFrom(values);
    return { model: await LocalModel.open(path, { ...engine, contextLength, speculate, ...(draft ? { draftModel: draft } : {}), ...(lora ? { lora } : {}) }), draft };
  } catch (err) {
    await draft?.close();
    throw err;
  }
}

/** --json: one object on stdout; else the text has streamed, and the counts and speeds go to stderr. */
function printResult(result: Awaited<ReturnType<LocalModel['generate']>>, model: LocalModel, json: boolean): void {
  if (json) {
    process.stdout.write(
      JSON.stringify({
        text: result.text,
        tokens: result.tokens,
        promptTokens: result.promptTokens,
        finishReason: result.finishReason,
        timings: { ...result.timings, backend: model.compute.name, threads: model.compute.threads },
        ...(result.speculation ? { speculation: result.speculation } : {}),
      }) + '\n',
    );
    return;
  }
  const t = result.timings;
  process.stdout.write('\n');
  process.stderr.write(
    `\n[${result.promptTokens.length} prompt tokens, ${result.tokens.length} generated, finish: ${result.finishReason}] ` +
      `prefill ${t.prefillTokPerS.toFixed(1)} tok/s, decode ${t.decodeTokPerS.toFixed(1)} tok/s (${model.compute.name}, ${model.compute.threads} thread${model.compute.threads === 1 ? '' : 's'})` +
      speculationLine(result.speculation) +
      '\n',
  );
}

export const runCommand: CliCommand = {
  name: 'run',
  async run(argv) {
    const parsed = parseRunFlags(argv);
    if (!parsed) return 0;
    const { values } = parsed;
    const prompt = values.prompt;
    if (prompt === undefined) throw new UsageError('--prompt TEXT is required');
    const sampling = samplingFrom(values);
    const maxTokens = intOption(values['max-tokens'], '--max-tokens', CLI_MAX_TOKENS);
    const contextLength = values.context === undefined ? undefined : intOption(values.context, '--context', 0);
    const engine = engineOptionsFrom(values);
    const { path, draftPath } = await resolveRunModel(values);
    const { model, draft } = await openRunModels(path, draftPath, values, engine, contextLength);
    try {
      if (!values.json) process.stdout.write(prompt);
      const result = await model.generate({
        prompt,
        maxTokens,
        sampling,
        stop: values.stop,
        ignoreEos: values['ignore-eos'],
        onText: values.json ? undefined : (delta) => process.stdout.write(delta),
      });
      printResult(result, model, values.json ?? false);
      return 0;
    } finally {
      await model.close();
      await draft?.close();
    }
  },
};
