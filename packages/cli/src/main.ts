// Must come first: libp2p 3 needs Promise.withResolvers, which Node 20 lacks.
import '@edge-node/node/polyfills';
import { readFileSync } from 'node:fs';
import { UsageError } from './cli-command.js';
import { commands } from './commands/index.js';

/** This package's version (package.json sits next to dist/). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `edge-node ${pkg.version} (Node ${process.version})\n`;
}

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 4);
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `edge-node — run large language models across the devices you already have

Usage: edge-node <command> [options]      (edge-node <command> --help for its options)
       edge-node --version

Commands:
${lines.join('\n')}
`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(help());
    return 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(version());
    return 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`edge-node: unknown command "${name}". Run \`edge-node --help\` for the list.\n`);
    return 2;
  }
  try {
    const command = await entry.load();
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`edge-node ${name}: ${err.message}\n`);
      return 2;
    }
    // Typed errors carry messages meant for the user; anything else is a bug and keeps its stack.
    const e = err as Error;
    const known = e && typeof e.name === 'string' && e.name.endsWith('Error') && e.name !== 'Error' && e.name !== 'TypeError';
    process.stderr.write(`edge-node ${name}: ${known ? e.message : (e?.stack ?? String(err))}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
