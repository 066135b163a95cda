import type { CliCommand } from '../cli-command.js';

// Each command lives in its own file; add one line here per command.
export const commands: CliCommand[] = [];
