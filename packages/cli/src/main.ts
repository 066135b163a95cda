const HELP = `edge-node — run large language models across the devices you already have

Usage: edge-node <command> [options]

Commands:
  run      generate text on this device
  help     show this help
`;

const [command] = process.argv.slice(2);
if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
  process.stdout.write(HELP);
} else {
  process.stderr.write(`edge-node: unknown command "${command}". Run \`edge-node --help\`.\n`);
  process.exitCode = 2;
}
