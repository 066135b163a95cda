/** One `edge-node <name>` subcommand. `run` gets the arguments after the command name and returns an exit code. */
export interface CliCommand {
  name: string;
  run(argv: string[]): Promise<number>;
}

/** A usage mistake on the command line: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
