import { UsageError, type CliCommand } from '../cli-command.js';
import { parseCommandLine } from '../command-line.js';

const HELP = `Usage: edge-node keygen [FILE] [--force]

Writes a new cluster key (libp2p pnet format) to FILE (mode 0600), or prints it when FILE is omitted.
Copy the same file to every node and start each with --cluster-key FILE: nodes without it cannot connect.
`;

export const keygenCommand: CliCommand = {
  name: 'keygen',
  async run(argv) {
    const parsed = parseCommandLine({ args: argv, allowPositionals: true, options: { force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }, HELP);
    if (!parsed) return 0;
    if (parsed.positionals.length > 1) throw new UsageError(`expected at most one FILE\n\n${HELP}`);
    const [file] = parsed.positionals;
    // The runtime (libp2p's pnet) only once there is a key to make.
    const { generateClusterKey, writeClusterKeyFile } = await import('@edge-node/node');
    if (!file) {
      process.stdout.write(`${Buffer.from(generateClusterKey()).toString('utf8')}\n`);
      return 0;
    }
    await writeClusterKeyFile(file, { overwrite: parsed.values.force ?? false });
    process.stderr.write(`edge-node keygen: wrote ${file}; copy it to every node and pass --cluster-key ${file}\n`);
    return 0;
  },
};
