import { DEFAULT_SAMPLING } from '@edge-node/node/settings';

/**
 * The sampling defaults of the two commands that generate text for a person, `run` and `chat`: one temperature (the
 * engine's default sampling, as llama.cpp's) and one answer length. The HTTP APIs keep each dialect's own defaults
 * (OpenAI: temperature 1 and no length limit but the context; Ollama: 0.8 and the context), as clients expect them.
 */
export const CLI_TEMPERATURE = DEFAULT_SAMPLING.temperature;

/** Most tokens `run` and `chat` generate for one answer unless --max-tokens says otherwise. */
export const CLI_MAX_TOKENS = 256;
