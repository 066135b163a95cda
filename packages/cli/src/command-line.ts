import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './cli-command.js';

type Parsed<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;

/**
 * A command's arguments, parsed by node:util's parseArgs. A flag it does not know (or one missing its value) is a
 * UsageError followed by the command's help, never a stack trace. null when `--help` was given (commands declare
 * `help: { type: 'boolean', short: 'h' }`): the help is printed and the command has nothing more to do.
 */
export function parseCommandLine<T extends ParseArgsConfig>(config: T, help: string): Parsed<T> | null {
  let parsed: Parsed<T>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${help}`);
  }
  if ((parsed.values as { help?: unknown }).help === true) {
    process.stdout.write(help);
    return null;
  }
  return parsed;
}
