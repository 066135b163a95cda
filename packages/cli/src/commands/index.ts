import type { CliCommand } from '../cli-command.js';
import { runCommand } from './run.js';
import { downloadCommand } from './download.js';
import { startCommand } from './start.js';
import { statusCommand } from './status.js';
import { keygenCommand } from './keygen.js';
import { planCommand } from './plan.js';
import { chatCommand } from './chat.js';
import { benchCommand } from './bench.js';

// Each command lives in its own file; add one line here per command.
export const commands: CliCommand[] = [
  startCommand,
  statusCommand,
  keygenCommand,
  planCommand,
  runCommand,
  downloadCommand,
  chatCommand,
  benchCommand,
];
