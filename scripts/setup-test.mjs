// Installs what the test suite needs beyond `npm ci`: llama.cpp (node-llama-cpp, the second oracle) and Debian's
// Chromium for the web-page test. Chromium comes from apt when it is missing and we are root; otherwise this says
// which command to run and fails, so a missing browser is never discovered halfway through the suite.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = process.env.EDGE_NODE_CHROMIUM ?? '/usr/bin/chromium';

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status === 0;
}

console.log('setup:test: installing llama.cpp (node-llama-cpp, prebuilt)…');
if (!run('npm', ['run', 'setup:llama-cpp'])) {
  console.error('setup:test: installing node-llama-cpp failed (see above)');
  process.exit(1);
}

if (existsSync(CHROMIUM)) {
  console.log(`setup:test: Chromium found at ${CHROMIUM}`);
} else if (process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0 && hasApt()) {
  console.log('setup:test: Chromium is missing; installing it with apt-get (Debian package "chromium")…');
  const ok = run('apt-get', ['update', '-qq']) && run('apt-get', ['install', '-y', '-qq', 'chromium'], { DEBIAN_FRONTEND: 'noninteractive' });
  if (!ok || !existsSync(CHROMIUM)) {
    console.error(`setup:test: could not install Chromium; install it yourself: apt-get install chromium (expected at ${CHROMIUM})`);
    process.exit(1);
  }
} else {
  console.error(
    `setup:test: the web-page test needs Chromium at ${CHROMIUM}, and it is missing.\n` +
      '  Install it with:  sudo apt-get install chromium\n' +
      '  (or point EDGE_NODE_CHROMIUM at a Chromium binary), then run this again.',
  );
  process.exit(1);
}

function hasApt() {
  try {
    execFileSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
