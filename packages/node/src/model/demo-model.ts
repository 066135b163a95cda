import { fileURLToPath } from 'node:url';

/**
 * The demo model shipped inside the package (stories260K, 1.1 MB, Karpathy's TinyStories llama2.c model as GGUF):
 * what `edge-node start` serves without `--model` when the Hub cannot be reached, so a first run works anywhere.
 * It writes children's stories; it does not follow instructions.
 */
export const DEMO_MODEL_PATH = fileURLToPath(new URL('../../models/stories260K.gguf', import.meta.url));

/** The Hub's default chat model: small enough for any device, instruction-tuned, a Llama-family safetensors repo. */
export const DEFAULT_HUB_CHAT_MODEL = 'HuggingFaceTB/SmolLM2-135M-Instruct';
